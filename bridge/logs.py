"""Structured logging with structlog: JSON lines off a terminal, readable text on one.

Call :func:`configure_logging` once at start-up, then log through :func:`get_logger`.
Records from the standard library (aiohttp, asyncio) go through the same processors, so
every line on the stream has one format. A redaction processor blanks any value whose key
looks like a credential, every configured secret in every form it is sent
(:mod:`bridge.redact`), and any Standard Webhooks secret or ``Bearer`` token inside a string:
the code never logs secrets on purpose, this is defence in depth.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from typing import Any, Literal, TextIO, TypeAlias, cast

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from bridge.redact import scrub

__all__ = ["REDACTED", "LogFormat", "configure_logging", "get_logger", "redact_secrets"]

LogFormat: TypeAlias = Literal["auto", "json", "console"]
REDACTED = "[REDACTED]"

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|authori[sz]ation|credential|api[_-]?key|cookie"
    r"|apop|digest|sasl",
    re.IGNORECASE,
)
_KEY_PARTS = re.compile(r"[_\-.\s]+")
_SECRET_IN_TEXT = re.compile(
    r"whsec_[A-Za-z0-9+/=]+|(?<![A-Za-z])(Bearer)\s+[A-Za-z0-9._~+/=-]{12,}"
)
_HANDLER_MARK = "_popbridge_handler"


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and _is_secret_name(key)


@functools.lru_cache(maxsize=4096)
def _is_secret_name(key: str) -> bool:
    # Log keys come from a small, fixed vocabulary: remember the verdict per name.
    if _SECRET_KEY.fullmatch(key):
        return True
    lowered = key.lower()
    if any(word in lowered for word in ("password", "secret", "token", "authori")):
        return True
    return any(_SECRET_KEY.fullmatch(part) for part in _KEY_PARTS.split(key) if part)


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 8:
        return value
    if isinstance(value, str):
        if "whsec_" in value or "Bearer" in value:
            value = _SECRET_IN_TEXT.sub(_replace_in_text, value)
        return scrub(value)
    if isinstance(value, dict):
        return {
            k: (REDACTED if _is_secret_key(k) else _scrub(v, depth + 1)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_scrub(item, depth + 1) for item in value)
    return value


def _replace_in_text(match: re.Match[str]) -> str:
    scheme = match.group(1)
    return f"{scheme} {REDACTED}" if scheme else REDACTED


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: blank values of credential-like keys and secrets inside text."""
    for key in list(event_dict):
        if _is_secret_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def _drop_color_message(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("color_message", None)
    return event_dict


class _NamedPrintLogger(structlog.PrintLogger):
    """A PrintLogger that knows its name, for ``structlog.stdlib.add_logger_name``."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class _NamedPrintLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedPrintLogger:
        return _NamedPrintLogger(self._file, str(args[0]) if args else "")


def configure_logging(
    level: str = "info", fmt: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Set up structlog and the standard library's root logger to write to ``stream``.

    ``level`` is debug, info, warning, error or critical; ``fmt`` is json (one object per
    line), console (for people) or auto (console when ``stream`` is a terminal). ``stream``
    defaults to ``sys.stdout``. Calling it again replaces the previous set-up.
    """
    stream = sys.stdout if stream is None else stream
    try:
        level_number = _LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}; use {', '.join(_LEVELS)}") from None
    if fmt not in ("auto", "json", "console"):
        raise ValueError(f"unknown log format {fmt!r}; use auto, json or console")
    is_tty = _isatty(stream)
    console = fmt == "console" or (fmt == "auto" and is_tty)

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor
    if console:
        renderer = structlog.dev.ConsoleRenderer(colors=is_tty)
    else:
        renderer = structlog.processors.JSONRenderer()
    # Redact last, after tracebacks became text, so nothing is rendered unredacted.
    tail: list[Processor] = [] if console else [structlog.processors.format_exc_info]
    tail.append(redact_secrets)

    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            *tail,
            structlog.processors.UnicodeDecoder(),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_number),
        logger_factory=_NamedPrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _drop_color_message],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tail,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_number)
    # Scrapes every few seconds would drown the log; failures still log at warning.
    logging.getLogger("aiohttp.access").setLevel(max(level_number, logging.WARNING))


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def get_logger(name: str, **initial: Any) -> FilteringBoundLogger:
    """A structlog logger whose lines carry ``logger=name`` plus ``initial`` key/values.

    It may be created at import time, before :func:`configure_logging`.
    """
    return cast(FilteringBoundLogger, structlog.get_logger(name, **initial))
