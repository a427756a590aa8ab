"""A webhook target: ``webhooks.<name>`` and its ``basic_auth``."""

from __future__ import annotations

import re
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from bridge.config.fields import (
    ExistingFile,
    Loc,
    SecretFile,
    SecretFileField,
    _check_webhook_secret,
    _is_loopback,
    _Model,
    _Problems,
)
from bridge.redact import basic_forms, secret_forms

_RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "content-type",
        "content-length",
        "host",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "transfer-encoding",
        "connection",
    }
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class BasicAuthConfig(_Model):
    """HTTP Basic authentication for a webhook target."""

    username: str = Field(min_length=1)
    password: SecretStr | None = None
    password_file: SecretFileField | None = None

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        problems = self._adopt_file_secret("password", "password_file")
        if not problems and self.password is None:
            problems.append((("password",), "set password or password_file"))
        if problems:
            raise _Problems(problems)
        return self


class WebhookConfig(_Model):
    """One webhook target: where messages are POSTed and how requests are signed."""

    url: str = Field(description="http(s) URL the JSON payload is POSTed to")
    secret: SecretStr | None = Field(
        default=None, description="Standard Webhooks signing secret: whsec_ + base64"
    )
    secret_file: SecretFileField | None = Field(default=None, description="file holding `secret`")
    secrets: list[SecretStr] = Field(
        default_factory=list,
        json_schema_extra={"default": []},
        description="more signing secrets, for rotation: every request is signed with each",
    )
    timeout: float = Field(default=15.0, gt=0, le=600, description="seconds per request")
    headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        json_schema_extra={"default": {}},
        description="extra request headers; values are treated as secrets (often API keys)",
    )
    bearer_token: SecretStr | None = Field(
        default=None, description="sent as Authorization: Bearer <token>"
    )
    bearer_token_file: SecretFileField | None = None
    basic_auth: BasicAuthConfig | None = None
    max_attempts: int = Field(default=4, ge=1, le=100, description="tries per message per session")
    backoff_initial: float = Field(default=0.5, gt=0, description="first retry delay, seconds")
    backoff_max: float = Field(default=30.0, gt=0, description="longest retry delay, seconds")
    breaker_failures: int = Field(
        default=5, ge=1, description="consecutive failures that open the circuit breaker"
    )
    breaker_cooldown: float = Field(
        default=30.0, gt=0, description="seconds the breaker stays open before a trial request"
    )
    allow_insecure_auth: bool = Field(
        default=False,
        description="allow bearer_token, basic_auth or headers over plain http:// to a host "
        "that is not loopback",
    )
    ca_file: ExistingFile | None = Field(
        default=None, description="PEM CA bundle to trust for this target instead of the system"
    )
    cert_file: ExistingFile | None = Field(
        default=None, description="PEM client certificate for mutual TLS"
    )
    key_file: ExistingFile | None = Field(
        default=None, description="PEM private key of cert_file (if not inside cert_file)"
    )
    on_too_large: Literal["reference", "park", "reject"] | None = Field(
        default=None,
        description="when the target answers 413 (or a payload is over max_payload_bytes): "
        "reference: send attachments by reference (needs attachments.store); park: leave the "
        "message on the server; reject: treat it as rejected (reject_policy applies). "
        "Default: reference with an attachments store, park without",
    )
    max_payload_bytes: int | None = Field(
        default=None,
        ge=1024,
        description="payloads larger than this are not sent whole: on_too_large applies at "
        "once, without waiting for a 413",
    )

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        if not parts.hostname:
            raise ValueError("has no host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not contain credentials; use basic_auth or bearer_token")
        return value

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        problems: list[tuple[Loc, str]] = []
        for name, header_value in value.items():
            if not _HEADER_NAME.match(name):
                problems.append(((name,), "is not a valid HTTP header name"))
            elif name.lower() == "authorization":
                problems.append(((name,), "set bearer_token or basic_auth instead"))
            elif name.lower() in _RESERVED_HEADERS:
                problems.append(((name,), "is set by the bridge and cannot be overridden"))
            if any(c in header_value.get_secret_value() for c in "\r\n\0"):
                problems.append(((name,), "value contains CR, LF or NUL"))
        if problems:
            raise _Problems(problems)
        return value

    @field_validator("secret")
    @classmethod
    def _valid_secret(cls, value: SecretStr | None) -> SecretStr | None:
        why = _check_webhook_secret(value.get_secret_value()) if value is not None else None
        if why:
            raise ValueError(why)
        return value

    @field_validator("secret_file")
    @classmethod
    def _valid_secret_file(cls, value: SecretFile | None) -> SecretFile | None:
        why = _check_webhook_secret(value.value.get_secret_value()) if value is not None else None
        if why:
            raise ValueError(f"the content of {value.path if value else ''}: {why}")
        return value

    @field_validator("secrets")
    @classmethod
    def _valid_secrets(cls, value: list[SecretStr]) -> list[SecretStr]:
        problems: list[tuple[Loc, str]] = []
        for index, item in enumerate(value):
            why = _check_webhook_secret(item.get_secret_value())
            if why:
                problems.append(((index,), why))
        if problems:
            raise _Problems(problems)
        return value

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        problems = self._adopt_file_secret("secret", "secret_file")
        problems += self._adopt_file_secret("bearer_token", "bearer_token_file")
        if self.secret is None and not self.secrets and not problems:
            problems.append(
                (
                    ("secret",),
                    "a signing secret is required: set secret or "
                    "secret_file (whsec_...), or secrets",
                )
            )
        if self.bearer_token is not None and self.basic_auth is not None:
            problems.append((("basic_auth",), "set either bearer_token or basic_auth, not both"))
        if self.backoff_max < self.backoff_initial:
            problems.append((("backoff_max",), "must be at least backoff_initial"))
        problems += self._transport_problems()
        if problems:
            raise _Problems(problems)
        return self

    def _transport_problems(self) -> list[tuple[Loc, str]]:
        problems: list[tuple[Loc, str]] = []
        parts = urlsplit(self.url)
        credentials = [
            key
            for key, present in (
                ("bearer_token", self.bearer_token is not None),
                ("basic_auth", self.basic_auth is not None),
                ("headers", bool(self.headers)),
            )
            if present
        ]
        if (
            parts.scheme == "http"
            and credentials
            and not self.allow_insecure_auth
            and not _is_loopback(parts.hostname or "")
        ):
            problems.append(
                (
                    ("url",),
                    f"http:// to {parts.hostname} would send {' and '.join(credentials)} and "
                    "the mail in clear text; use https://, or set allow_insecure_auth: true "
                    "if the network is trusted",
                )
            )
        if parts.scheme == "http" and (self.ca_file or self.cert_file):
            problems.append((("url",), "ca_file and cert_file need an https:// URL"))
        if self.key_file is not None and self.cert_file is None:
            problems.append((("key_file",), "needs cert_file"))
        return problems

    def secret_values(self) -> set[str]:
        """Every secret of this target in every form it is sent (see bridge.redact)."""
        forms: set[str] = set()
        for secret in self.signing_secrets():
            raw = secret.get_secret_value()
            forms |= secret_forms(raw) | secret_forms(raw.removeprefix("whsec_"))
        if self.bearer_token is not None:
            forms |= secret_forms(self.bearer_token.get_secret_value())
        if self.basic_auth is not None and self.basic_auth.password is not None:
            forms |= basic_forms(
                self.basic_auth.username, self.basic_auth.password.get_secret_value()
            )
        for value in self.headers.values():
            forms |= secret_forms(value.get_secret_value())
        return forms

    def signing_secrets(self) -> list[SecretStr]:
        """Every signing secret, the primary one first, without duplicates."""
        out: list[SecretStr] = []
        seen: set[str] = set()
        for item in ([self.secret] if self.secret is not None else []) + list(self.secrets):
            raw = item.get_secret_value()
            if raw not in seen:
                seen.add(raw)
                out.append(item)
        return out
