"""WebhookTarget: validation at construction, and no secret in its repr or errors."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from bridge.webhook import BasicAuth, DeliveryKind, DeliveryOutcome, WebhookTarget

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def make(**kwargs: object) -> WebhookTarget:
    settings: dict[str, object] = {"name": "crm", "url": "https://hooks.example/in"}
    settings["secrets"] = (SECRET,)
    settings.update(kwargs)
    return WebhookTarget(**settings)  # type: ignore[arg-type]


def test_repr_hides_secrets_token_and_password() -> None:
    """repr() names the target and URL but shows no secret, token or password."""
    target = make(bearer_token="tok-abc")
    with_basic = make(basic_auth=BasicAuth("u", "hunter2"))
    text = repr(target) + repr(with_basic) + str(target)
    assert "crm" in text
    assert "https://hooks.example/in" in text
    for secret in (SECRET, SECRET.removeprefix("whsec_"), "tok-abc", "hunter2"):
        assert secret not in text


def test_frozen_hashable_and_normalised() -> None:
    """Targets are immutable values: secrets become a tuple, headers a read-only mapping."""
    target = make(secrets=[SECRET], headers={"X-A": "1"})
    assert target.secrets == (SECRET,)
    assert hash(target) == hash(make(secrets=[SECRET], headers={"X-A": "1"}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.url = "http://other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        target.headers["X-B"] = "2"  # type: ignore[index]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "non-empty name"),
        ({"url": "ftp://x/y"}, "http:// or https://"),
        ({"url": "/relative"}, "http:// or https://"),
        ({"secrets": ()}, "non-empty list"),
        ({"secrets": SECRET}, "not one string"),
        ({"secrets": ("whsec_" + base64.b64encode(b"tiny").decode(),)}, "secrets[0]"),
        ({"secrets": (SECRET, "plain-password-here")}, "secrets[1]"),
        ({"headers": {"webhook-id": "x"}}, "set by the bridge"),
        ({"headers": {"Authorization": "x"}}, "set by the bridge"),
        ({"headers": {"X-Evil": "a\r\nInjected: 1"}}, "CR, LF or NUL"),
        ({"bearer_token": "t", "basic_auth": BasicAuth("u", "p")}, "not both"),
        ({"bearer_token": "  "}, "bearer_token is empty"),
        ({"timeout": 0}, "timeout must be greater than 0"),
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"backoff_initial": -1}, "backoff_initial must not be negative"),
        ({"breaker_threshold": 0}, "breaker_threshold must be at least 1"),
        ({"breaker_cooldown": 0}, "breaker_cooldown must be greater than 0"),
    ],
)
def test_invalid_settings_are_refused_with_a_clear_message(
    kwargs: dict[str, object], message: str
) -> None:
    """Each invalid field raises ValueError naming the target and the field."""
    with pytest.raises(ValueError, match=r"crm|name") as info:
        make(**kwargs)
    assert message in str(info.value)
    assert "plain-password-here" not in str(info.value)


def test_basic_auth_user_may_not_contain_a_colon() -> None:
    """RFC 7617 forbids ':' in the user id; the password may hold one."""
    with pytest.raises(ValueError, match="':'"):
        BasicAuth("a:b", "p")
    assert BasicAuth("a", "p:q").password == "p:q"


def test_outcome_as_error_carries_status_attempts_and_retry_after() -> None:
    """DeliveryOutcome.as_error() maps to the shared error tree with its attributes."""
    outcome = DeliveryOutcome(
        kind=DeliveryKind.CIRCUIT_OPEN,
        target="crm",
        webhook_id="msg_x",
        error="circuit breaker open",
        retry_after=12.0,
    )
    error = outcome.as_error()
    assert error is not None
    assert error.transient
    assert (error.target, error.status, error.attempt, error.retry_after) == ("crm", None, 0, 12.0)
    assert "crm" in str(error)
