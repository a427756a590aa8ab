"""Configured secrets, in every form they are sent, are scrubbed by every sink."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import structlog

from bridge import redact
from bridge.config import Config
from bridge.deadletter import DeadLetterStore
from bridge.health import HealthState
from bridge.ledger import Ledger
from bridge.logs import configure_logging
from bridge.webhook import BasicAuth, WebhookTarget
from tests.integration.kit import SECRET

POP3_PASSWORD = "pop3-Pa55word-for-redaction"
TOKEN = "ya29.access-token-for-redaction"
HEADER = "api-key-for-redaction-42"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _config() -> Config:
    return Config.from_dict(
        {
            "data_dir": "/var/lib/bridge",
            "webhooks": {
                "main": {
                    "url": "https://example.org/hook",
                    "secret": SECRET,
                    "headers": {"X-Key": HEADER},
                    "basic_auth": {"username": "u", "password": "basic-pw-for-redaction"},
                }
            },
            "mailboxes": [
                {
                    "name": "a",
                    "host": "pop.example.org",
                    "username": "alice@example.org",
                    "password": POP3_PASSWORD,
                    "webhooks": ["main"],
                },
                {
                    "name": "b",
                    "host": "pop.example.org",
                    "username": "bob@example.org",
                    "token": TOKEN,
                    "auth": "xoauth2",
                    "webhooks": ["main"],
                },
            ],
        },
        env={},
    )


SENT_FORMS = {
    "pop3 password": POP3_PASSWORD,
    "sasl plain": _b64(f"\0alice@example.org\0{POP3_PASSWORD}"),
    "auth login": _b64(POP3_PASSWORD),
    "oauth token": TOKEN,
    "xoauth2": _b64(f"user=bob@example.org\x01auth=Bearer {TOKEN}\x01\x01"),
    "header": HEADER,
    "basic raw": "basic-pw-for-redaction",
    "basic base64": _b64("u:basic-pw-for-redaction"),
    "signing secret": SECRET,
    "signing key": SECRET.removeprefix("whsec_"),
}


def _text() -> str:
    return "server said: " + " | ".join(f"{k}={v}" for k, v in SENT_FORMS.items())


def _assert_clean(text: str) -> None:
    for kind, value in SENT_FORMS.items():
        assert value not in text, kind
    assert text.count("[redacted]") >= len(SENT_FORMS)


def test_loading_a_config_registers_every_form_and_scrub_removes_them() -> None:
    """After load, scrub() removes each secret in the form it travels in."""
    _config()
    _assert_clean(redact.scrub(_text()))


def test_json_escaped_forms_are_scrubbed() -> None:
    """A receiver that quotes headers as JSON (slashes escaped) is scrubbed too."""
    redact.register(redact.secret_forms('with/slash-and"quote-123'))
    quoted = json.dumps({"k": 'with/slash-and"quote-123'}).replace("/", "\\/")
    assert "slash" not in redact.scrub(quoted)


def test_a_cut_text_ending_in_the_start_of_a_secret_is_scrubbed() -> None:
    """The first bytes of a long body may end inside a secret: that start is scrubbed."""
    secret = "0123456789-long-secret-value-abcdefgh"
    redact.register([secret])
    assert redact.scrub("body ... " + secret[:12], cut=True) == "body ... [redacted]"
    assert redact.scrub("body ... " + secret[:12]) == "body ... " + secret[:12]


def test_short_values_are_not_registered() -> None:
    """A 3-character value would mangle every line: it is left alone."""
    before = redact.registered_count()
    redact.register(["abc"])
    assert redact.registered_count() == before
    assert redact.scrub("abc") == "abc"


def test_webhook_target_sensitive_values_cover_headers_and_basic_base64() -> None:
    """The webhook client's own scrub list holds headers and base64(user:password)."""
    target = WebhookTarget(
        name="t",
        url="https://example.org/",
        secrets=(SECRET,),
        headers={"X-Key": "header-value-123"},
        basic_auth=BasicAuth("u", "pw-123456"),
    )
    values = target.sensitive_values()
    assert "header-value-123" in values
    assert _b64("u:pw-123456") in values


def test_sink_log() -> None:
    """The JSON log scrubs secrets inside any value, whatever the key."""
    _config()
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    structlog.get_logger("t").warning("delivery", error=_text(), nested={"detail": _text()})
    line = stream.getvalue()
    assert "delivery" in line
    _assert_clean(line)


def test_sink_ledger(tmp_path: Path) -> None:
    """``last_error`` is scrubbed when it is written."""
    _config()
    with Ledger(tmp_path / "d") as book:
        book.mark_seen("a", [("u1", "msg_u1", 10)], ["main"], 1.0)
        book.mark_parked("a", "u1", "main", _text(), None, 2.0)
        book.commit()
        text = book.rows_for("a", "u1")["main"].last_error or ""
    _assert_clean(text)


def test_sink_dead_letter(tmp_path: Path) -> None:
    """A dead letter's reason is scrubbed before it is written."""
    _config()
    store = DeadLetterStore(tmp_path / "dl")
    store.write("a", "u1", b"raw", _text())
    (letter,) = store.list()
    _assert_clean(letter.json_path.read_text())


def test_sink_readiness() -> None:
    """The reason /readyz shows for a failing mailbox is scrubbed."""
    _config()
    health = HealthState({"a": 60.0}, clock=lambda: 0.0)
    health.mailbox_failed("a", _text())
    _assert_clean(json.dumps(health.readiness().failing))


def test_a_short_secret_is_scrubbed_only_as_a_whole_word() -> None:
    """A 4-7 character secret ("pass") does not eat the start of ordinary words ("passed")."""
    redact.register(["pass"])
    assert redact.scrub("flow passed, bypass") == "flow passed, bypass"
    assert redact.scrub("password was pass.") == "password was [redacted]."
