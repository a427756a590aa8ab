"""One webhook endpoint and how to deliver to it, as a frozen value object.

The config layer builds :class:`WebhookTarget` values from YAML; this module has no
dependency on pydantic. Construction validates every field, and ``repr()`` never
shows a secret, token or password.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlsplit

from bridge.redact import basic_forms, secret_forms
from bridge.webhook.signing import SECRET_PREFIX, decode_secret

__all__ = ["RESERVED_HEADERS", "BasicAuth", "TooLargePolicy", "WebhookTarget"]

TooLargePolicy = Literal["reference", "park", "reject"]
"""What to do with a body the receiver finds too large (413) or over ``max_payload_bytes``."""

RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "authorization",
        "host",
        "transfer-encoding",
    }
)
"""Header names the client sets itself; a target's static headers may not use them."""


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """HTTP basic credentials; ``repr()`` hides the password."""

    user: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        """RFC 7617: the user id may not contain a colon."""
        if ":" in self.user:
            raise ValueError("a basic-auth user name may not contain ':'")


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A named webhook endpoint with its secrets, timeouts, retry and breaker settings.

    Times are in seconds. ``max_attempts`` bounds the HTTP requests within one
    :meth:`~bridge.webhook.client.WebhookClient.deliver` call (the 413 reference
    resend not included); backoff between them is exponential with full jitter,
    from ``backoff_initial`` up to ``backoff_max``, and a ``Retry-After`` longer than
    ``backoff_max`` ends the call (capped at ``retry_after_max`` in the outcome) so
    the poller reschedules instead of holding its POP3 session. The circuit breaker
    opens after ``breaker_threshold`` consecutive transient failures, waits
    ``breaker_cooldown`` before a probe, and doubles that wait after each failed
    probe up to ``breaker_cooldown_max``.

    ``on_too_large`` says what happens when the receiver answers 413, or when a body is over
    ``max_payload_bytes`` (then nothing is sent): ``"reference"`` sends the reference body
    the caller provides (attachments by reference) once, ``"park"`` ends the call REJECTED
    with ``parked`` set (the message must stay on the server), ``"reject"`` ends it REJECTED.
    """

    name: str
    url: str
    secrets: tuple[str, ...] = field(repr=False)
    timeout: float = 15.0
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    bearer_token: str | None = field(default=None, repr=False)
    basic_auth: BasicAuth | None = field(default=None, repr=False)
    max_attempts: int = 4
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 3600.0
    breaker_threshold: int = 5
    breaker_cooldown: float = 30.0
    breaker_cooldown_max: float = 600.0
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)
    """TLS settings for this target only (private CA, client certificate); None: the
    client's default (the system trust store)."""
    on_too_large: TooLargePolicy = "reference"
    max_payload_bytes: int | None = None

    def __post_init__(self) -> None:
        """Validate every field; errors name the target and field, never a secret."""
        where = f"webhook target {self.name!r}"
        if not self.name:
            raise ValueError("a webhook target needs a non-empty name")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{where}: url must be an absolute http:// or https:// URL")
        if isinstance(self.secrets, str):  # one string would become a tuple of characters
            raise ValueError(f"{where}: secrets must be a list of whsec_ secrets, not one string")
        secrets = tuple(self.secrets)
        if not secrets:
            raise ValueError(f"{where}: secrets must be a non-empty list of whsec_ secrets")
        for index, secret in enumerate(secrets):
            try:
                decode_secret(secret)
            except ValueError as exc:
                raise ValueError(f"{where}: secrets[{index}]: {exc}") from None
        object.__setattr__(self, "secrets", secrets)
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))
        for header, value in self.headers.items():
            if header.lower() in RESERVED_HEADERS:
                raise ValueError(f"{where}: header {header!r} is set by the bridge itself")
            if any(c in f"{header}{value}" for c in "\r\n\x00") or not header.strip():
                raise ValueError(f"{where}: header {header!r} has an empty name, CR, LF or NUL")
        if self.bearer_token is not None and self.basic_auth is not None:
            raise ValueError(f"{where}: set bearer_token or basic_auth, not both")
        if self.bearer_token is not None and not self.bearer_token.strip():
            raise ValueError(f"{where}: bearer_token is empty")
        positive: dict[str, float] = {
            "timeout": self.timeout,
            "backoff_max": self.backoff_max,
            "retry_after_max": self.retry_after_max,
            "breaker_cooldown": self.breaker_cooldown,
            "breaker_cooldown_max": self.breaker_cooldown_max,
        }
        for key, number in positive.items():
            if not number > 0:
                raise ValueError(f"{where}: {key} must be greater than 0")
        if self.backoff_initial < 0:
            raise ValueError(f"{where}: backoff_initial must not be negative")
        if self.max_attempts < 1:
            raise ValueError(f"{where}: max_attempts must be at least 1")
        if self.breaker_threshold < 1:
            raise ValueError(f"{where}: breaker_threshold must be at least 1")
        if self.on_too_large not in ("reference", "park", "reject"):
            raise ValueError(f"{where}: on_too_large must be reference, park or reject")
        if self.max_payload_bytes is not None and self.max_payload_bytes < 1:
            raise ValueError(f"{where}: max_payload_bytes must be at least 1")

    def sensitive_values(self) -> tuple[str, ...]:
        """Every secret of this target in every form it is sent, for scrubbing texts.

        Signing secrets (with and without ``whsec_``), the bearer token, the basic-auth
        password and ``base64(user:password)``, and every static header value (documented
        as secrets: they often carry API keys), each also JSON-escaped.
        """
        forms: set[str] = set()
        for secret in self.secrets:
            forms |= secret_forms(secret) | secret_forms(secret[len(SECRET_PREFIX) :])
        if self.bearer_token:
            forms |= secret_forms(self.bearer_token)
        if self.basic_auth is not None and self.basic_auth.password:
            forms |= basic_forms(self.basic_auth.user, self.basic_auth.password)
        for value in self.headers.values():
            forms |= secret_forms(value)
        return tuple(sorted(forms, key=len, reverse=True))
