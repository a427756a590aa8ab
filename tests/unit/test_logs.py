"""Logging: format selection, context, timestamps, levels and secret redaction."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from bridge.logs import REDACTED, configure_logging, get_logger

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class TtyStream(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo configure_logging after each test so other tests see the defaults."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_auto_writes_json_lines_when_not_a_terminal() -> None:
    """auto on a non-TTY stream gives one JSON object per line with ISO UTC timestamps."""
    stream = io.StringIO()
    configure_logging("info", "auto", stream)
    get_logger("bridge.poller").info("session done", mailbox="support", messages=3)
    (line,) = lines(stream)
    assert line["event"] == "session done"
    assert line["mailbox"] == "support"
    assert line["messages"] == 3
    assert line["level"] == "info"
    assert line["logger"] == "bridge.poller"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", line["timestamp"])


def test_auto_is_readable_on_a_terminal() -> None:
    """auto on a TTY uses the console renderer (not JSON), with the event and key/values."""
    stream = TtyStream()
    configure_logging("info", "auto", stream)
    get_logger("x").info("hello there", mailbox="support")
    text = stream.getvalue()
    assert "hello there" in text
    assert "support" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_explicit_format_overrides_terminal_detection() -> None:
    """fmt=json on a terminal still writes JSON; fmt=console off one writes text."""
    tty = TtyStream()
    configure_logging("info", "json", tty)
    get_logger("x").info("a")
    assert lines(tty)[0]["event"] == "a"
    plain = io.StringIO()
    configure_logging("info", "console", plain)
    get_logger("x").info("b", k=1)
    assert "k=1" in plain.getvalue()
    assert "\x1b[" not in plain.getvalue()  # no colour codes when not a terminal


def test_logger_made_before_configuration_uses_it() -> None:
    """A module-level logger created before configure_logging writes to the configured stream."""
    early = get_logger("early")
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    early.info("late line")
    assert lines(stream)[0]["logger"] == "early"


def test_context_variables_are_merged() -> None:
    """Values bound in contextvars appear on every line; explicit values win over them."""
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    structlog.contextvars.bind_contextvars(mailbox="support", session="s1")
    get_logger("x").info("one", session="explicit")
    (line,) = lines(stream)
    assert line["mailbox"] == "support"
    assert line["session"] == "explicit"


def test_level_filters_lower_levels() -> None:
    """At level warning, info and debug lines are dropped, warning and error kept."""
    stream = io.StringIO()
    configure_logging("warning", "json", stream)
    log = get_logger("x")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert [line["event"] for line in lines(stream)] == ["w", "e"]


def test_standard_library_records_share_the_format() -> None:
    """aiohttp/asyncio-style stdlib log records come out as the same JSON lines."""
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    logging.getLogger("aiohttp.server").warning("Error handling request %s", "x")
    (line,) = lines(stream)
    assert line["event"] == "Error handling request x"
    assert line["logger"] == "aiohttp.server"
    assert line["level"] == "warning"
    assert "timestamp" in line


def test_reconfiguring_does_not_duplicate_lines() -> None:
    """Calling configure_logging twice replaces the handler instead of adding one."""
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", "json", first)
    configure_logging("info", "json", second)
    logging.getLogger("lib").warning("once")
    assert first.getvalue() == ""
    assert len(lines(second)) == 1


@pytest.mark.parametrize(
    "key",
    ["password", "secret", "token", "authorization", "pass", "webhook_secret", "bearer_token",
     "Authorization", "smtp_pass", "api_key", "apop_digest", "sasl_payload", "PASSWORD_FILE"],
)  # fmt: skip
def test_credential_keys_are_redacted(key: str) -> None:
    """A value under a credential-like key never reaches the output."""
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    get_logger("x").info("event", **{key: "hunter2-value"})
    assert "hunter2-value" not in stream.getvalue()
    assert lines(stream)[0][key] == REDACTED


def test_secrets_inside_nested_values_and_text_are_redacted() -> None:
    """Nested mappings, lists and free text are scrubbed of secrets too."""
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    get_logger("x").info(
        f"signed with {SECRET}",
        request={"headers": {"Authorization": "Basic dXNlcjpwdw==", "X-Id": "keep-me"}},
        items=[{"token": "tok-value-1"}],
        note="header was Bearer abcdefghijklmnopqrstuvwxyz",
    )
    out = stream.getvalue()
    for secret in (SECRET, SECRET[6:], "dXNlcjpwdw==", "tok-value-1", "abcdefghijklmnopqrstuvwxyz"):
        assert secret not in out
    (line,) = lines(stream)
    assert line["request"]["headers"]["X-Id"] == "keep-me"
    assert line["note"] == f"header was Bearer {REDACTED}"


def test_secret_in_exception_text_and_stdlib_records_is_redacted() -> None:
    """Tracebacks and stdlib records pass through the same redaction."""
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    try:
        raise RuntimeError(f"bad key {SECRET}")
    except RuntimeError:
        get_logger("x").exception("failed")
    logging.getLogger("lib").error("leaked %s", SECRET)
    assert SECRET not in stream.getvalue()
    first, second = lines(stream)
    assert "RuntimeError: bad key [REDACTED]" in first["exception"]
    assert second["event"] == f"leaked {REDACTED}"


def test_ordinary_values_are_untouched() -> None:
    """Keys like 'passed', 'bypass_count' or 'uidl' and normal text are not redacted."""
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    get_logger("x").info("Basic flow passed", passed=True, bypass_count=2, uidl="0001abcd")
    (line,) = lines(stream)
    assert (line["event"], line["passed"], line["bypass_count"], line["uidl"]) == (
        "Basic flow passed", True, 2, "0001abcd"
    )  # fmt: skip


@pytest.mark.parametrize(("level", "fmt"), [("loud", "json"), ("info", "xml")])
def test_bad_level_or_format_is_refused(level: str, fmt: Any) -> None:
    """Unknown levels and formats raise ValueError naming the valid choices."""
    with pytest.raises(ValueError, match="use"):
        configure_logging(level, fmt, io.StringIO())
