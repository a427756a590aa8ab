"""A POP3 mailbox: ``mailboxes[]`` and the OAuth 2 client that may fetch its token."""

from __future__ import annotations

from typing import Any, Literal, Self, TypeAlias
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from bridge.config.fields import (
    MIB,
    NAME_PATTERN,
    ExistingFile,
    SecretFileField,
    _is_loopback,
    _Model,
    _Problems,
)
from bridge.redact import sasl_forms, secret_forms

TlsMode: TypeAlias = Literal["implicit", "starttls", "none"]
AuthMethod: TypeAlias = Literal["auto", "user", "apop", "plain", "login", "xoauth2", "oauthbearer"]
_PASSWORD_AUTH = frozenset({"user", "apop", "plain", "login"})
_TOKEN_AUTH = frozenset({"xoauth2", "oauthbearer"})


class OAuth2Config(_Model):
    """An OAuth 2 client that fetches (and refreshes) the access token for XOAUTH2."""

    token_url: str = Field(description="the provider's token endpoint (https)")
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    client_secret_file: SecretFileField | None = None
    scope: str | list[str] | None = Field(
        default=None,
        description="scopes to ask for (Microsoft 365 app-only: "
        "https://outlook.office365.com/.default)",
    )
    grant: Literal["client_credentials", "refresh_token"] | None = Field(
        default=None,
        description="client_credentials (Microsoft 365 app-only) or refresh_token (Gmail, "
        "delegated access); default: refresh_token when one is configured",
    )
    refresh_token: SecretStr | None = None
    refresh_token_file: SecretFileField | None = None
    timeout: float = Field(default=30.0, gt=0, le=300, description="seconds per token request")
    refresh_before: float = Field(
        default=300.0,
        ge=0,
        description="refresh this many seconds before the token expires (at most a quarter "
        "of its lifetime)",
    )

    @field_validator("token_url")
    @classmethod
    def _valid_token_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an https:// URL")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError(
                "must be https://: the client secret and tokens would cross the network in "
                "clear text (http:// is only accepted for a loopback host)"
            )
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not contain credentials; use client_id and client_secret")
        return value

    @model_validator(mode="after")
    def _grant(self) -> Self:
        problems = self._adopt_file_secret("client_secret", "client_secret_file")
        problems += self._adopt_file_secret("refresh_token", "refresh_token_file")
        if problems:
            raise _Problems(problems)
        if self.grant is None:
            grant = "refresh_token" if self.refresh_token is not None else "client_credentials"
            object.__setattr__(self, "grant", grant)
        if self.grant == "refresh_token" and self.refresh_token is None:
            why = "grant refresh_token needs refresh_token or refresh_token_file"
            problems.append((("refresh_token",), why))
        if self.grant == "client_credentials" and self.client_secret is None:
            why = "grant client_credentials needs client_secret or client_secret_file"
            problems.append((("client_secret",), why))
        if problems:
            raise _Problems(problems)
        return self

    @property
    def scopes(self) -> str | None:
        """The scope parameter: space-separated."""
        if self.scope is None:
            return None
        return self.scope if isinstance(self.scope, str) else " ".join(self.scope)

    def secret_values(self) -> set[str]:
        """The client secret and refresh token in every form (see bridge.redact)."""
        forms: set[str] = set()
        for value in (self.client_secret, self.refresh_token):
            if value is not None:
                forms |= secret_forms(value.get_secret_value())
        return forms


class MailboxConfig(_Model):
    """One POP3 mailbox to drain."""

    name: str = Field(pattern=NAME_PATTERN, description="unique; used in metrics and logs")
    host: str = Field(min_length=1, description="POP3 server host name or address")
    port: int = Field(
        default=995, ge=1, le=65535, description="default 995 for tls: implicit, 110 otherwise"
    )
    tls: TlsMode = Field(
        default="implicit",
        description="implicit: TLS from the start (pop3s); starttls: STLS upgrade, required; "
        "none: plain text (credentials need allow_insecure_auth)",
    )
    tls_verify: bool = Field(default=True, description="verify the server certificate and name")
    ca_file: ExistingFile | None = Field(
        default=None, description="PEM CA bundle to trust instead of the system store"
    )
    client_cert: ExistingFile | None = Field(default=None, description="PEM client certificate")
    client_key: ExistingFile | None = Field(
        default=None, description="PEM private key for client_cert"
    )
    username: str = Field(min_length=1)
    password: SecretStr | None = Field(default=None, description="discouraged: use password_file")
    password_file: SecretFileField | None = None
    token: SecretStr | None = Field(
        default=None, description="OAuth 2 access token for xoauth2 / oauthbearer"
    )
    token_file: SecretFileField | None = None
    oauth2: OAuth2Config | str | None = Field(
        default=None,
        description="fetch and refresh the XOAUTH2 token: an OAuth 2 client, or the name of "
        "one under the top-level oauth2",
    )
    auth: AuthMethod = Field(
        default="auto",
        description="auto picks the strongest the server offers for the credentials given",
    )
    allow_insecure_auth: bool = Field(
        default=False, description="allow credentials over a connection without TLS"
    )
    poll_interval: float = Field(default=60.0, ge=1, description="seconds between sessions")
    webhooks: list[str] = Field(min_length=1, description="names of webhook targets to POST to")
    max_message_bytes: int = Field(default=50 * MIB, ge=1, description="larger is oversize")
    oversize_policy: Literal["park", "headers_only"] = Field(
        default="park",
        description="park: leave on the server, do not fetch; headers_only: post headers (TOP)",
    )
    reject_policy: Literal["park", "dead_letter"] = Field(
        default="park",
        description="park: leave on the server; dead_letter: spool to data_dir, then delete",
    )
    session_max_messages: int = Field(default=500, ge=1, description="messages per session")
    session_max_bytes: int = Field(default=512 * MIB, ge=1, description="bytes per session")
    session_max_seconds: float = Field(default=300.0, gt=0, description="seconds per session")
    delivery_concurrency: int = Field(default=4, ge=1, le=256, description="POSTs in flight")
    strict_order: bool = Field(
        default=False, description="deliver one at a time, in server order; stop at a failure"
    )
    keep: bool = Field(
        default=False,
        description="leave delivered messages on the server (never DELE); the ledger remembers "
        "them so they are posted once",
    )
    keep_days: int | None = Field(
        default=None,
        description="with keep: delete a delivered message this many days after its "
        "acknowledgement (proven to be that message first); none: keep for ever",
    )
    connect_timeout: float = Field(
        default=30.0, gt=0, description="seconds for TCP connect, TLS handshake and greeting"
    )
    command_timeout: float = Field(
        default=60.0,
        gt=0,
        description="seconds for a one-line POP3 reply in total; the idle limit of a long one",
    )
    min_transfer_rate: float = Field(
        default=2048.0,
        gt=0,
        description="octets/s a RETR (or listing) must average after command_timeout",
    )
    include_raw: bool = Field(default=False, description="put the raw message in the payload")
    max_attachment_bytes: int | None = Field(
        default=None,
        ge=0,
        description="attachments above this are sent by reference (with an attachments store) "
        "or as metadata only with omitted=true (without one)",
    )
    login_backoff_auth: float = Field(
        default=1800.0, ge=0, description="seconds to wait after a refused login"
    )
    login_backoff_in_use: float = Field(
        default=30.0, ge=0, description="seconds to wait after [IN-USE]"
    )

    @model_validator(mode="before")
    @classmethod
    def _default_port(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("port") is None and "tls" in data:
            data = {**data, "port": 995 if data["tls"] == "implicit" else 110}
        return data

    @field_validator("host")
    @classmethod
    def _valid_host(cls, value: str) -> str:
        if any(c.isspace() for c in value) or "/" in value:
            raise ValueError("must be a host name or address, without spaces, scheme or path")
        return value

    @field_validator("webhooks")
    @classmethod
    def _unique_targets(cls, value: list[str]) -> list[str]:
        problems = [
            ((index,), f"{name!r} is listed twice")
            for index, name in enumerate(value)
            if name in value[:index]
        ]
        if problems:
            raise _Problems(problems)
        return value

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        problems = self._adopt_file_secret("password", "password_file")
        problems += self._adopt_file_secret("token", "token_file")
        if problems:
            raise _Problems(problems)
        if self.oauth2 is not None:
            if self.token is not None or self.password is not None:
                problems.append(
                    (("oauth2",), "oauth2 fetches the token itself: remove password and token")
                )
            if self.auth in _PASSWORD_AUTH:
                problems.append((("auth",), "oauth2 needs auth: xoauth2, oauthbearer or auto"))
        elif self.auth in _PASSWORD_AUTH and self.password is None:
            problems.append((("password",), f"auth: {self.auth} needs password or password_file"))
        elif self.auth in _TOKEN_AUTH and self.token is None:
            problems.append((("token",), f"auth: {self.auth} needs token, token_file or oauth2"))
        elif self.auth == "auto" and self.password is None and self.token is None:
            problems.append(
                (("password",), "set password_file (or password), or token_file for OAuth")
            )
        if (
            self.tls == "none"
            and (self.password is not None or self.token is not None or self.oauth2 is not None)
            and not self.allow_insecure_auth
        ):
            problems.append(
                (
                    ("tls",),
                    "tls: none would send the password or token in clear text; use tls: "
                    "implicit or starttls, or set allow_insecure_auth: true if the network "
                    "is trusted",
                )
            )
        if self.client_key is not None and self.client_cert is None:
            problems.append((("client_key",), "needs client_cert"))
        if problems:
            raise _Problems(problems)
        return self

    @field_validator("keep_days", mode="before")
    @classmethod
    def _days_not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a number of days (keep_days: 30), not true or false")
        return value

    @model_validator(mode="after")
    def _keep_days(self) -> Self:
        if self.keep_days is None:
            return self
        if not self.keep:
            raise _Problems(
                [
                    (
                        ("keep_days",),
                        "only applies with keep: true (delivered messages are deleted at once "
                        "without it); set keep: true, or remove keep_days",
                    )
                ]
            )
        if self.keep_days < 1:
            raise _Problems(
                [
                    (
                        ("keep_days",),
                        f"must be a whole number of days, 1 or more (got {self.keep_days}); "
                        "to delete delivered messages at once, remove keep and keep_days",
                    )
                ]
            )
        return self

    def secret_values(self) -> set[str]:
        """The password and token in every form sent over POP3 (see bridge.redact)."""
        forms = sasl_forms(
            self.username,
            self.password.get_secret_value() if self.password is not None else None,
            self.token.get_secret_value() if self.token is not None else None,
        )
        if isinstance(self.oauth2, OAuth2Config):
            forms |= self.oauth2.secret_values()
        return forms
