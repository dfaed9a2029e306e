"""Structured logs: a JSON formatter, the request context every record carries, and redaction.

The context (request id, principal, organization, decision id) lives in one context variable that
the request-id middleware opens per request and `bind()` fills in as the request learns who is
calling and what was decided. `ContextFilter` copies it onto every record; `RedactFilter` masks
API keys and bearer tokens in messages and tracebacks. Both sit on the console handler
(`settings.LOGGING`), so records from any logger pass through them.

Named `logs` rather than `logging` so that `from costswitch import logging` never shadows the stdlib.
Imports nothing from Django apps: `settings.LOGGING` loads it before the apps are ready.
"""

import json
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime

CONTEXT_FIELDS = ("request_id", "principal", "organization", "decision_id", "task", "task_id")
_EMPTY: dict = {}
_context: ContextVar[dict] = ContextVar("costswitch_log_context", default=_EMPTY)

# An API key (`cs_` + 43 url-safe characters; 20 or more is enough to be one) keeps its visible
# prefix, which admin shows anyway; a bearer credential of any kind is masked whole.
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"'\\,;]+")
_API_KEY = re.compile(r"(?<![A-Za-z0-9])(cs_[A-Za-z0-9_-]{8})[A-Za-z0-9_-]{12,}")
REDACTED = "[REDACTED]"

# Attributes every LogRecord has; anything else was passed with `extra=` and goes into the JSON.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", *CONTEXT_FIELDS}
# Django puts the HttpRequest on request/server records: its repr carries the query string.
_NOT_EXTRA = _RECORD_ATTRS | {"request"}
_JSON_TYPES = (str, int, float, bool, list, dict, type(None))
_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode
_PROMPT_LOGGER = logging.getLogger("costswitch.prompts")


def bind(**fields) -> None:
    """Add fields (e.g. `decision_id=...`) to the context of the current request or task."""
    _context.set({**_context.get(), **fields})


def context() -> dict:
    return _context.get()


def open_context(**fields) -> None:
    """Start a fresh context (one per request or task run)."""
    _context.set(fields)


def clear_context(**_kwargs) -> None:
    _context.set(_EMPTY)


def redact(text: str) -> str:
    if "cs_" not in text and "earer" not in text and "EARER" not in text:
        return text
    return _API_KEY.sub(rf"\1{REDACTED}", _BEARER.sub(rf"\1 {REDACTED}", text))


def principal_label(*, api_key=None, user=None) -> str | None:
    """How logs name a caller: the key's visible prefix (never the key) or the user id."""
    if api_key is not None:
        return api_key.prefix
    if user is not None and getattr(user, "pk", None) is not None:
        return f"user:{user.pk}"
    return None


def log_prompt(*, request_id: str | None, messages) -> None:
    """Log a request's prompt. Call only for organizations with `log_prompts` on."""
    if _PROMPT_LOGGER.isEnabledFor(logging.DEBUG):
        _PROMPT_LOGGER.debug(
            "prompt of %s: %s", request_id, json.dumps(messages, ensure_ascii=False, default=str)
        )


class ContextFilter(logging.Filter):
    """Copies the request context onto every record (None where unknown), unless the record
    already carries the field (`extra=`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _context.get()
        for name in CONTEXT_FIELDS:
            if name not in record.__dict__:
                setattr(record, name, ctx.get(name))
        return True


class RedactFilter(logging.Filter):
    """Masks API keys and bearer tokens in the formatted message and the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request context, `extra=` fields
    (JSON scalars, lists and dicts only) and the traceback; keys and bearer tokens masked."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        for name in CONTEXT_FIELDS:
            value = fields.get(name)
            if value is not None:
                entry[name] = value
        for name in fields.keys() - _NOT_EXTRA:
            value = fields[name]
            if isinstance(value, _JSON_TYPES):
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        # Again over the whole line: `extra=` fields (a path, say) were not redacted by the filter.
        return redact(_encode(entry))


def _configure_celery_logging(**_kwargs) -> None:
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


def _task_started(task=None, task_id=None, **_kwargs) -> None:
    # An eager task runs inside a request and keeps the request's context.
    if task is not None and not task.request.is_eager:
        open_context(task=task.name, task_id=task_id)


def _task_finished(task=None, **_kwargs) -> None:
    if task is not None and not task.request.is_eager:
        clear_context()


def connect_celery_logging() -> None:
    """The worker and beat log through `settings.LOGGING` (same JSON formatter and filters) instead
    of Celery's own root and task handlers, and each task run gets a fresh context (its name and id;
    whatever a task binds, e.g. a decision id, does not leak into the next one)."""
    from celery import signals

    signals.setup_logging.connect(_configure_celery_logging, weak=False, dispatch_uid="costswitch.logs")
    signals.task_prerun.connect(_task_started, weak=False, dispatch_uid="costswitch.logs.prerun")
    signals.task_postrun.connect(_task_finished, weak=False, dispatch_uid="costswitch.logs.postrun")
