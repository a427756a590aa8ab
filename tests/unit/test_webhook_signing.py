"""Standard Webhooks ids and signatures, checked against the `standardwebhooks` reference."""

from __future__ import annotations

import base64
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bridge.webhook.signing import decode_secret, sign, signature_base, webhook_id

SECRET_A = "whsec_" + base64.b64encode(b"a" * 32).decode()
SECRET_B = "whsec_" + base64.b64encode(b"b" * 24).decode()


def verify(secret: str, msg_id: str, timestamp: int, body: bytes, signature: str) -> None:
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }
    Webhook(secret).verify(body, headers, json_parse=False)


def test_signature_verifies_with_the_reference_implementation() -> None:
    """A v1 signature made by sign() is accepted by standardwebhooks for the same secret."""
    now = int(time.time())
    body = '{"subject": "Grüße", "n": 1}'.encode()
    signature = sign([SECRET_A], "msg_abc", now, body)
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", signature)
    verify(SECRET_A, "msg_abc", now, body, signature)


def test_signature_fails_for_a_changed_body_id_or_secret() -> None:
    """The reference rejects the signature when the body, the id or the secret differ."""
    now = int(time.time())
    signature = sign([SECRET_A], "msg_abc", now, b"{}")
    with pytest.raises(WebhookVerificationError):
        verify(SECRET_A, "msg_abc", now, b"{ }", signature)
    with pytest.raises(WebhookVerificationError):
        verify(SECRET_A, "msg_abd", now, b"{}", signature)
    with pytest.raises(WebhookVerificationError):
        verify(SECRET_B, "msg_abc", now, b"{}", signature)


def test_rotation_signs_with_every_secret_and_each_verifies() -> None:
    """Several secrets give space-separated v1 entries; a receiver with either one verifies."""
    now = int(time.time())
    signature = sign([SECRET_A, SECRET_B], "msg_r", now, b"[1]")
    entries = signature.split(" ")
    assert len(entries) == 2
    assert all(e.startswith("v1,") for e in entries)
    verify(SECRET_A, "msg_r", now, b"[1]", signature)
    verify(SECRET_B, "msg_r", now, b"[1]", signature)
    assert entries[0] == sign([SECRET_A], "msg_r", now, b"[1]")


def test_signature_base_is_id_dot_timestamp_dot_body() -> None:
    """The signed content is exactly `id.timestamp.body` (Standard Webhooks section 'Signing')."""
    assert signature_base("msg_1", 1700000000, b"{}") == b"msg_1.1700000000.{}"


@given(body=st.binary(max_size=2048).map(lambda b: b.hex().encode()), ts=st.integers(0, 2**33))
def test_signature_matches_reference_sign_for_any_body(body: bytes, ts: int) -> None:
    """For arbitrary bodies and timestamps our signature equals the reference's own sign()."""
    from datetime import UTC, datetime

    expected = Webhook(SECRET_A).sign("msg_p", datetime.fromtimestamp(ts, tz=UTC), body.decode())
    assert sign([SECRET_A], "msg_p", ts, body) == expected


def test_webhook_id_is_stable_distinct_and_well_formed() -> None:
    """Same mailbox+UIDL -> same id; another mailbox or UIDL -> another id; msg_ + base32."""
    first = webhook_id("support", "000000017f3a9c1b")
    assert first == webhook_id("support", "000000017f3a9c1b")
    assert re.fullmatch(r"msg_[a-z2-7]{32}", first)
    assert webhook_id("sales", "000000017f3a9c1b") != first
    assert webhook_id("support", "000000017f3a9c1c") != first
    # The NUL separator keeps ("ab", "c") and ("a", "bc") apart.
    assert webhook_id("ab", "c") != webhook_id("a", "bc")


def test_webhook_id_pinned_values() -> None:
    """Literal expected ids: changing the derivation would make every stored id unrecognisable."""
    assert webhook_id("support", "000000017f3a9c1b") == "msg_louyzwqtjfhaxfqesg6en2xhdvt5c3st"
    assert webhook_id("mb", "u1") == "msg_xqdkc3gmwknnxtj22okz5t7mdqwzeyn3"


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("c2VjcmV0c2VjcmV0c2VjcmV0", "must start with 'whsec_'"),
        ("whsec_not base64!!", "followed by base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "at least 16 bytes"),
        ("whsec_", "at least 16 bytes"),
    ],
)
def test_bad_secrets_are_refused_without_echoing_them(secret: str, message: str) -> None:
    """A malformed secret raises ValueError that says what is wrong but never shows the secret."""
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        decode_secret(secret)
    body = secret.removeprefix("whsec_")
    if body:
        assert body not in str(info.value)


def test_unpadded_secret_is_accepted_like_the_reference() -> None:
    """Base64 without '=' padding decodes to the same key the reference library uses."""
    unpadded = SECRET_B.rstrip("=")
    assert decode_secret(unpadded) == decode_secret(SECRET_B) == b"b" * 24


def test_sign_needs_at_least_one_secret_and_a_sequence() -> None:
    """No secrets, or one bare string instead of a list, is a programming error."""
    with pytest.raises(ValueError, match="at least one"):
        sign([], "msg", 1, b"")
    with pytest.raises(TypeError):
        sign(SECRET_A, "msg", 1, b"")
