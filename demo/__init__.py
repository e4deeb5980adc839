"""`make demo`: a small web-style application logs realistic traffic with PII through the handler into
rotating files; the agent ships them (embedded default: a local archive directory); the demo prints what the
application logged next to what reached the archive, and the redaction counts."""
