"""``logshield`` console script: ``reveal`` decrypts ``enc:`` tokens (audited first), ``scan`` counts what would be
redacted, ``pseudonym`` computes the keyed pseudonym of a value, ``session`` pulls one session's records out of logs."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from typing import IO

from .config import ConfigError, RedactionConfig, load_handler_config, load_redaction_config

__all__ = ["main"]

EXIT_FAILED = 1
EXIT_USAGE = 2


def _open_lines(path: str) -> Iterator[str]:
    if path == "-":
        yield from sys.stdin
        return
    with open(path, encoding="utf-8", errors="replace") as handle:
        yield from handle


def _reveal_line(line: str, config: RedactionConfig) -> tuple[str, int]:
    """``line`` with every ``enc:`` token made with the configured key decrypted. In a JSON line a token sits in a
    string, so its plaintext goes in JSON-escaped (quotes, backslashes, newlines) and the line stays valid JSON;
    text lines get the plaintext as it is."""
    from .operators import ENCRYPTED_TOKEN, reveal_text

    stripped = line.strip()
    is_json = False
    if stripped.startswith(("{", "[")) and ENCRYPTED_TOKEN.search(line):
        try:
            json.loads(stripped)
            is_json = True
        except ValueError:
            pass
    if not is_json:
        return reveal_text(line, config)
    total = 0

    def escaped(match: re.Match[str]) -> str:
        nonlocal total
        plain, count = reveal_text(match.group(0), config)
        total += count
        return json.dumps(plain, ensure_ascii=False)[1:-1] if count else match.group(0)

    return ENCRYPTED_TOKEN.sub(escaped, line), total


def _redacted_reason(reason: str | None, config: RedactionConfig) -> str | None:
    """The --reason as it goes into the audit record: redacted like any log text (a case note may name someone)."""
    if not reason:
        return reason
    from .redaction import shared_redactor

    try:
        return str(shared_redactor(config).redact_text(reason)[0])
    except Exception as exc:  # never write the raw text
        return f"<logshield: reason withheld ({type(exc).__name__})>"


def _reveal(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from .audit.reveal import AuditFileError, AuditTrail

    try:
        config = load_redaction_config()
        handler_config = load_handler_config()
    except ConfigError as exc:
        print(f"logshield reveal: {exc}", file=err)
        return EXIT_USAGE
    if config.encryption_key is None:
        print("logshield reveal: no decryption key: set LOGSHIELD_ENCRYPTION_KEY or "
              "LOGSHIELD_ENCRYPTION_KEY_FILE", file=err)
        return EXIT_USAGE
    audit_file = args.audit_file or handler_config.audit_file
    if not audit_file:
        print("logshield reveal: revealing is audited first: set LOGSHIELD_AUDIT_FILE (or --audit-file) to the "
              "audit log the sidecar ships", file=err)
        return EXIT_USAGE
    chain_key = handler_config.chain_key
    trail = AuditTrail(audit_file, chain_key=chain_key.get_secret_value() if chain_key else None,
                       actor=args.actor)
    source = "stdin" if args.file == "-" else os.path.abspath(args.file)
    try:
        trail.write("logshield.reveal", source, "started", key_id=config.encryption_kid,
                    reason=_redacted_reason(args.reason, config))
    except AuditFileError as exc:
        print(f"logshield reveal: refused, nothing decrypted: {exc}", file=err)
        return EXIT_FAILED
    total = 0
    try:
        for line in _open_lines(args.file):
            text, count = _reveal_line(line.rstrip("\n"), config)
            total += count
            out.write(text + "\n")
        trail.write("logshield.reveal", source, "success", key_id=config.encryption_kid, values_revealed=total)
    except AuditFileError as exc:
        print(f"logshield reveal: {exc}", file=err)
        return EXIT_FAILED
    finally:
        trail.close()
    print(f"logshield reveal: {total} value(s) decrypted; audited in {audit_file}", file=err)
    return 0


def _pseudonym(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """The token a value becomes under the ``pseudonym`` operator or ``pseudonym_fields``: to search an archive
    for one person without revealing anyone."""
    from .operators import Operators

    try:
        config = load_redaction_config()
    except ConfigError as exc:
        print(f"logshield pseudonym: {exc}", file=err)
        return EXIT_USAGE
    if config.pseudonym_key is None:
        print("logshield pseudonym: set LOGSHIELD_PSEUDONYM_KEY or LOGSHIELD_PSEUDONYM_KEY_FILE", file=err)
        return EXIT_USAGE
    out.write(Operators(config).pseudonym(args.type.upper(), args.value) + "\n")
    return 0


def _session(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from .audit.sessions import SessionQuery, matching_records

    query = SessionQuery(session_id=args.session_id, actor=args.actor, request_id=args.request_id)
    if query.empty:
        print("logshield session: give --session-id, --actor or --request-id", file=err)
        return EXIT_USAGE
    count = 0
    for record in matching_records(args.files, query):
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    print(f"logshield session: {count} record(s)", file=err)
    return 0


def _scan(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from .redactor import RedactionSummary, Redactor

    try:
        config = load_redaction_config(**({"detection": args.mode} if args.mode else {}))
    except ConfigError as exc:
        print(f"logshield scan: {exc}", file=err)
        return EXIT_USAGE
    redactor = Redactor(config)
    total = RedactionSummary()
    lines = changed = 0
    batch: list[object] = []

    def flush() -> None:
        nonlocal changed
        for _, summary in redactor.redact_batch(batch):
            changed += bool(summary)
            total.merge(summary)
        batch.clear()

    for line in _open_lines(args.file):
        lines += 1
        raw = line.rstrip("\n")
        try:
            batch.append(json.loads(raw) if raw.startswith(("{", "[")) else raw)
        except ValueError:
            batch.append(raw)
        if len(batch) >= 256:
            flush()
    flush()
    report = {"lines": lines, "lines_with_findings": changed, **(total.as_dict() or {"entities": {}, "rules": []})}
    out.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return 0


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = argparse.ArgumentParser(prog="logshield", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    reveal = sub.add_parser("reveal", help="decrypt enc: tokens made with LOGSHIELD_ENCRYPTION_KEY(_FILE); writes "
                            "an audit record to LOGSHIELD_AUDIT_FILE first")
    reveal.add_argument("file", nargs="?", default="-", help="JSON-lines or text file, '-' for stdin")
    reveal.add_argument("--audit-file", help="where the audit record goes (default LOGSHIELD_AUDIT_FILE)")
    reveal.add_argument("--actor", help="who reveals (default: the OS user; the OS user and uid are recorded "
                        "either way)")
    reveal.add_argument("--reason", help="why (ticket, case number), recorded (redacted) in the audit record")
    pseudonym = sub.add_parser("pseudonym", help="print the keyed pseudonym of a value (LOGSHIELD_PSEUDONYM_KEY)")
    pseudonym.add_argument("value")
    pseudonym.add_argument("--type", default="ACTOR", help="entity type or field, e.g. ACTOR, EMAIL_ADDRESS")
    session = sub.add_parser("session", help="every record of one session, actor or request, in time order")
    session.add_argument("files", nargs="+", help="JSON-lines files (.zst/.gz archive objects too)")
    session.add_argument("--session-id")
    session.add_argument("--actor")
    session.add_argument("--request-id")
    scan = sub.add_parser("scan", help="dry run: count what would be redacted (never prints values)")
    scan.add_argument("file", help="JSON-lines or text file, '-' for stdin")
    scan.add_argument("--mode", choices=("patterns", "full"), help="override LOGSHIELD_DETECTION")
    args = parser.parse_args(argv)
    commands = {"reveal": _reveal, "scan": _scan, "pseudonym": _pseudonym, "session": _session}
    return commands[args.command](args, out, err)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
