"""presidio-logshield: keep personal data and secrets out of logs with Microsoft Presidio.

Add :class:`PIIRedactingHandler` to your logging config (or :class:`RedactingFilter` to an existing handler,
or use :class:`JsonFormatter`); wrap requests in :func:`log_context` to tag every record.
"""

from .audit import AuditRecordFilter, audit_event, audited
from .config import ConfigError, HandlerConfig, RedactionConfig, load_handler_config, load_redaction_config
from .context import bind_context, current_context, log_context, unbind_context
from .filters import RedactingFilter
from .formatter import JsonFormatter
from .handler import PIIRedactingHandler

__all__ = [
    "AuditRecordFilter",
    "ConfigError",
    "HandlerConfig",
    "JsonFormatter",
    "PIIRedactingHandler",
    "RedactingFilter",
    "RedactionConfig",
    "audit_event",
    "audited",
    "bind_context",
    "current_context",
    "load_handler_config",
    "load_redaction_config",
    "log_context",
    "unbind_context",
]

