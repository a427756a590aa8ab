"""The configuration: one YAML file, validated by pydantic.

Loading runs four steps, in this order:

1. parse the YAML (``yaml.safe_load`` semantics; duplicate keys are an error);
2. ``${VAR}`` interpolation in every string value (``$${`` writes a literal ``${``);
3. environment overrides: ``POPBRIDGE_<KEY>[__<KEY>...]`` (see :func:`apply_env_overrides`);
4. validation, which also reads every ``*_file`` secret and checks every reference.

Every problem becomes one line ``key.path: what is wrong`` in :attr:`ConfigError.problems`.
Secrets are :class:`pydantic.SecretStr`: ``repr``, ``str`` and ``model_dump`` never show
them, and error messages never contain a value. After validation the effective secret is
always in the plain field (``password``, ``token``, ``secret``, ``bearer_token``), whether it
came from the file, the environment or a ``*_file``. Every loaded config registers its
secrets with :mod:`bridge.redact`, so every sink scrubs them from then on.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeAlias
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from bridge.errors import ConfigError
from bridge.redact import basic_forms, sasl_forms, secret_forms
from bridge.redact import register as register_secrets
from bridge.webhook.signing import decode_secret
from bridge.yamlfile import parse_yaml

__all__ = [
    "ENV_PREFIX",
    "MIB",
    "NAME_PATTERN",
    "AttachmentsConfig",
    "AuthMethod",
    "BasicAuthConfig",
    "Config",
    "HttpConfig",
    "LogConfig",
    "MailboxConfig",
    "OAuth2Config",
    "SecretFile",
    "TlsMode",
    "WebhookConfig",
    "apply_env_overrides",
    "config_schema",
    "format_loc",
    "interpolate",
    "load_config",
    "parse_listen",
    "read_secret_text",
]

MIB = 1024 * 1024
ENV_PREFIX = "POPBRIDGE_"
"""Environment variables starting with this prefix override config keys."""

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
"""Mailbox and webhook names: safe as Prometheus label values and in file names."""

_SECRET_FILE_MAX_BYTES = 64 * 1024
_SECRET_PAIRS = {
    "client_secret": "client_secret_file",
    "refresh_token": "refresh_token_file",
    "password": "password_file",
    "secret": "secret_file",
    "token": "token_file",
    "bearer_token": "bearer_token_file",
    "secret_access_key": "secret_access_key_file",
}
"""A secret and its ``*_file`` twin; setting one from the environment drops the other."""

TlsMode: TypeAlias = Literal["implicit", "starttls", "none"]
AuthMethod: TypeAlias = Literal["auto", "user", "apop", "plain", "login", "xoauth2", "oauthbearer"]
_PASSWORD_AUTH = frozenset({"user", "apop", "plain", "login"})
_TOKEN_AUTH = frozenset({"xoauth2", "oauthbearer"})
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

Loc: TypeAlias = tuple[str | int, ...]


# --------------------------------------------------------------------------- problems


class _Problems(ValueError):
    """Raised inside validators to report problems at exact paths below the current model."""

    def __init__(self, problems: Sequence[tuple[Loc, str]]) -> None:
        super().__init__("; ".join(f"{format_loc(loc)}: {msg}" for loc, msg in problems))
        self.problems = problems


def format_loc(loc: Loc) -> str:
    """Render a pydantic location tuple as ``mailboxes[0].webhooks[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "." in part or not part:
            out += f"[{part!r}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


# --------------------------------------------------------------------------- field types


def _base_dir(info: ValidationInfo) -> Path:
    context = info.context if isinstance(info.context, dict) else {}
    base = context.get("base_dir")
    return Path(base) if base is not None else Path.cwd()


def _resolve(path: Path, info: ValidationInfo) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else _base_dir(info) / path


@dataclass(frozen=True)
class SecretFile:
    """A secret read from a file at load time; ``repr`` shows the path, never the content."""

    path: Path
    value: SecretStr


def read_secret_text(path: Path) -> str:
    """The secret in the file at ``path``: UTF-8, without the final line break, not empty.

    Raises ValueError saying what is wrong with the file, never its content.
    """
    try:
        # O_NONBLOCK: opening a FIFO (or a device) must not hang validate and run forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(path)
            if not stat.S_ISREG(mode):
                raise ValueError(
                    f"cannot read {path}: not a regular file (a FIFO, socket or device); "
                    "point it at a file that holds the secret"
                )
            data = fh.read(_SECRET_FILE_MAX_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(f"cannot read {path}: no such file; create it or fix the path") from None
    except IsADirectoryError:
        raise ValueError(f"cannot read {path}: it is a directory") from None
    except PermissionError:
        raise ValueError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > _SECRET_FILE_MAX_BYTES:
        raise ValueError(f"{path} is larger than {_SECRET_FILE_MAX_BYTES} bytes; not a secret file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    text = text.rstrip("\r\n")
    if not text:
        raise ValueError(f"{path} is empty")
    return text


def _read_secret_file(raw: object, info: ValidationInfo) -> SecretFile:
    if isinstance(raw, SecretFile):
        return raw
    if not isinstance(raw, str | Path) or not str(raw).strip():
        raise ValueError("must be a file path")
    path = _resolve(Path(raw), info)
    return SecretFile(path=path, value=SecretStr(read_secret_text(path)))


SecretFileField = Annotated[
    SecretFile,
    PlainValidator(_read_secret_file),
    PlainSerializer(lambda f: str(f.path), return_type=str),
    WithJsonSchema({"type": "string", "description": "path of a file holding the secret"}),
]


def _existing_file(path: Path, info: ValidationInfo) -> Path:
    path = _resolve(path, info)
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file")
    return path


ExistingFile = Annotated[Path, AfterValidator(_existing_file)]


def _absolute_dir(path: Path, info: ValidationInfo) -> Path:
    return _resolve(path, info)


ConfigPath = Annotated[Path, AfterValidator(_absolute_dir)]


def parse_listen(listen: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) into host and port; raise ValueError."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"must be host:port, e.g. 127.0.0.1:9808, not {listen!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("write IPv6 addresses in brackets, e.g. [::1]:9808")
    return host, port


def _is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost.") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_webhook_secret(value: str) -> str | None:
    """Return why ``value`` is not a usable signing secret, or None. Never echoes it."""
    try:
        decode_secret(value)
    except ValueError as exc:
        return f"{exc}; the value is not shown"
    return None


# --------------------------------------------------------------------------- models


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
        validate_default=False,
    )

    def _adopt_file_secret(self, field: str, file_field: str) -> list[tuple[Loc, str]]:
        """Copy a ``*_file`` secret into its plain field so callers read one place."""
        inline = getattr(self, field)
        from_file: SecretFile | None = getattr(self, file_field)
        if from_file is None:
            return []
        if inline is not None:
            return [((file_field,), f"set either {field} or {file_field}, not both")]
        # The model is frozen for callers; this runs once, inside validation.
        object.__setattr__(self, field, from_file.value)
        return []


class HttpConfig(_Model):
    """The HTTP endpoint for ``/metrics``, ``/healthz`` and ``/readyz``."""

    listen: str = Field(
        default="127.0.0.1:9808",
        description="host:port to listen on ([::1]:9808 for IPv6; port 0 picks a free port)",
    )

    stall_factor: float = Field(
        default=3.0,
        ge=1,
        description="/readyz: a mailbox without progress for stall_factor x poll_interval "
        "(at least stall_min_seconds) is stalled",
    )
    stall_min_seconds: float = Field(
        default=120.0, gt=0, description="/readyz: the shortest stall window, seconds"
    )

    @field_validator("listen")
    @classmethod
    def _valid_listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @property
    def host(self) -> str:
        """The host part of ``listen``."""
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """The port part of ``listen``."""
        return parse_listen(self.listen)[1]


class LogConfig(_Model):
    """Structured logging."""

    level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        default="info", description="lowest level written"
    )
    format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="json: one JSON object per line; console: readable; auto: console on a "
        "terminal, json otherwise",
    )


class MetricsConfig(_Model):
    """What ``/metrics`` exports."""

    mailbox_detail: Literal["essential", "full"] = Field(
        default="essential",
        description="essential: per mailbox only the last good poll, the oldest undelivered "
        "message, the backlog and errors by kind, the rest summed over mailboxes (about 150 "
        "bytes per mailbox); full: every counter and histogram per mailbox too (about 6 KB per "
        "mailbox; for a few hundred mailboxes at most)",
    )


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


def _duration(value: object) -> object:
    """A duration as seconds: a number, or text like ``30d``, ``12h``, ``1d12h``."""
    if isinstance(value, str):
        from bridge.attachments.store import parse_duration

        return parse_duration(value)
    return value


class AttachmentsConfig(_Model):
    """Where attachments sent by reference are stored (the claim-check content store)."""

    store: Literal["dir", "s3"] = Field(
        description="dir: files under `path`; s3: objects in an S3-compatible bucket"
    )
    path: ConfigPath | None = Field(
        default=None, description="dir: the directory (default: data_dir/attachments)"
    )
    base_url: str | None = Field(
        default=None,
        description="dir: content_ref is base_url/<sha256> instead of the file path (when you "
        "serve the directory over HTTP yourself)",
    )
    bucket: str | None = Field(default=None, min_length=3, description="s3: the bucket")
    prefix: str = Field(default="", description="s3: key prefix, e.g. popbridge/")
    endpoint_url: str | None = Field(
        default=None, description="s3: the store's URL for S3-compatible stores (MinIO, ...)"
    )
    region: str | None = Field(default=None, description="s3: region, e.g. eu-west-1")
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto", description="s3: path suits most self-hosted stores"
    )
    access_key_id: str | None = Field(
        default=None, description="s3: without keys, the default AWS credential chain is used"
    )
    secret_access_key: SecretStr | None = None
    secret_access_key_file: SecretFileField | None = None
    retention: Annotated[float, BeforeValidator(_duration)] | None = Field(
        default=None,
        gt=0,
        description="prune objects older than this while running (seconds, or 30d, 12h...); "
        "none: keep until `popbridge attachments prune`",
    )
    url_expiry: int = Field(
        default=7 * 86400,
        ge=60,
        le=7 * 86400,
        description="s3: seconds a presigned content_ref URL stays valid (at most 7 days)",
    )

    @field_validator("base_url", "endpoint_url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not contain credentials")
        return value

    @model_validator(mode="after")
    def _keys_of_store(self) -> Self:
        problems = self._adopt_file_secret("secret_access_key", "secret_access_key_file")
        s3_keys = ("bucket", "endpoint_url", "region", "access_key_id", "secret_access_key")
        if self.store == "dir":
            for key in s3_keys:
                if getattr(self, key) is not None:
                    problems.append(((key,), "is an s3 setting; this store is dir"))
        else:
            if self.bucket is None:
                problems.append((("bucket",), "store: s3 needs a bucket"))
            for key in ("path", "base_url"):
                if getattr(self, key) is not None:
                    problems.append(((key,), "is a dir setting; this store is s3"))
            if (self.access_key_id is None) != (self.secret_access_key is None):
                problems.append(
                    (
                        ("access_key_id",),
                        "set access_key_id and secret_access_key (or its _file) together, "
                        "or neither to use the default AWS credential chain",
                    )
                )
        if problems:
            raise _Problems(problems)
        return self


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


class Config(_Model):
    """The whole configuration file."""

    data_dir: ConfigPath = Field(
        default=Path("/var/lib/popbridge"), description="ledger and dead letters live here"
    )
    http: HttpConfig = Field(default_factory=HttpConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    max_concurrent_sessions: int = Field(
        default=8, ge=1, description="POP3 sessions open at once, over all mailboxes"
    )
    shutdown_grace: float = Field(
        default=25.0, gt=0, description="seconds in-flight work may take after SIGTERM"
    )
    webhooks: dict[str, WebhookConfig] = Field(min_length=1, description="targets by name")
    oauth2: dict[str, OAuth2Config] = Field(
        default_factory=dict, description="OAuth 2 clients by name, shared by mailboxes"
    )
    mailboxes: list[MailboxConfig] = Field(min_length=1)
    attachments: AttachmentsConfig | None = Field(
        default=None,
        description="content store for attachments sent by reference; none by default",
    )

    @model_validator(mode="after")
    def _references(self) -> Self:
        problems: list[tuple[Loc, str]] = []
        name_re = re.compile(NAME_PATTERN)
        for name, hook in self.webhooks.items():
            if hook.on_too_large == "reference" and self.attachments is None:
                problems.append(
                    (
                        ("webhooks", name, "on_too_large"),
                        "reference needs an attachments store (attachments: {store: dir} or "
                        "s3); without one use park or reject",
                    )
                )
            if not name_re.match(name):
                problems.append(
                    (
                        ("webhooks", name),
                        "webhook names may only use A-Z a-z 0-9 _ . - (at most 64 characters)",
                    )
                )
        seen: dict[str, int] = {}
        for index, mailbox in enumerate(self.mailboxes):
            if mailbox.name in seen:
                problems.append(
                    (
                        ("mailboxes", index, "name"),
                        f"{mailbox.name!r} is already used by mailboxes[{seen[mailbox.name]}]",
                    )
                )
            else:
                seen[mailbox.name] = index
            if isinstance(mailbox.oauth2, str) and mailbox.oauth2 not in self.oauth2:
                problems.append(
                    (
                        ("mailboxes", index, "oauth2"),
                        _unknown_name("oauth2 client", mailbox.oauth2, self.oauth2),
                    )
                )
            for position, target in enumerate(mailbox.webhooks):
                if target not in self.webhooks:
                    problems.append(
                        (
                            ("mailboxes", index, "webhooks", position),
                            _unknown_name("webhook", target, self.webhooks),
                        )
                    )
        if problems:
            raise _Problems(problems)
        return self

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        env: Mapping[str, str] | None = None,
        base_dir: str | Path | None = None,
        source: str = "<dict>",
    ) -> Config:
        """Validate a mapping as if it were the YAML file (interpolation, overrides included).

        ``env`` defaults to ``os.environ``; pass ``{}`` for a hermetic result. Relative paths
        resolve against ``base_dir`` (default: the current directory). Raises ConfigError.
        """
        return _build(
            dict(data),
            os.environ if env is None else env,
            Path(base_dir) if base_dir is not None else Path.cwd(),
            source,
        )

    def secret_values(self) -> set[str]:
        """Every configured secret in every form it is sent, for :func:`bridge.redact.register`."""
        forms: set[str] = set()
        for webhook in self.webhooks.values():
            forms |= webhook.secret_values()
        for mailbox in self.mailboxes:
            forms |= mailbox.secret_values()
        for client in self.oauth2.values():
            forms |= client.secret_values()
        return forms

    def oauth2_for(self, mailbox: MailboxConfig) -> tuple[str, OAuth2Config] | None:
        """The OAuth 2 client of ``mailbox`` and the name its token is cached under."""
        if mailbox.oauth2 is None:
            return None
        if isinstance(mailbox.oauth2, str):
            return mailbox.oauth2, self.oauth2[mailbox.oauth2]
        return f"mailbox-{mailbox.name}", mailbox.oauth2

    def mailbox(self, name: str) -> MailboxConfig:
        """The mailbox called ``name``; KeyError if there is none."""
        for mailbox in self.mailboxes:
            if mailbox.name == name:
                return mailbox
        raise KeyError(name)


def _unknown_name(kind: str, name: str, known: typing.Iterable[str]) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f" (defined: {', '.join(known)})"
    return f"no {kind} named {name!r}{hint}"


# --------------------------------------------------------------------------- schema walking


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated and Optional to the type that holds the structure."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _type_at(loc: Loc) -> Any:
    """The (unwrapped) declared type at ``loc`` below :class:`Config`, or None."""
    current: Any = Config
    for part in loc:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return None
            current = current.model_fields[part].annotation
        elif origin is list and isinstance(part, int):
            current = typing.get_args(current)[0]
        elif origin is dict:
            current = typing.get_args(current)[1]
        else:
            return None
    return _unwrap(current)


# --------------------------------------------------------------------------- interpolation

_VAR = re.compile(r"\$(\$?)\{([^}]*)\}|\$\{")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def interpolate(value: Any, env: Mapping[str, str], loc: Loc = ()) -> tuple[Any, list[str]]:
    """Replace ``${VAR}`` in every string below ``value``; ``$${`` is a literal ``${``.

    Returns the new value and one problem line per missing or malformed variable.
    """
    problems: list[str] = []

    def walk(node: Any, where: Loc) -> Any:
        if isinstance(node, str):
            return substitute(node, where)
        if isinstance(node, dict):
            return {key: walk(item, (*where, str(key))) for key, item in node.items()}
        if isinstance(node, list):
            return [walk(item, (*where, index)) for index, item in enumerate(node)]
        return node

    def substitute(text: str, where: Loc) -> str:
        if "$" not in text:
            return text

        def replace(match: re.Match[str]) -> str:
            escaped, name = match.group(1), match.group(2)
            if name is None:
                problems.append(
                    f"{format_loc(where)}: unterminated '${{' (write $${{ for a literal ${{)"
                )
                return match.group(0)
            if escaped:
                return "${" + name + "}"
            if not _VAR_NAME.match(name):
                problems.append(f"{format_loc(where)}: ${{{name}}} is not a valid variable name")
                return match.group(0)
            if name not in env:
                problems.append(
                    f"{format_loc(where)}: environment variable {name} is not set; "
                    f"export {name}=... or write the value (or a *_file) in the file"
                )
                return match.group(0)
            return env[name]

        return _VAR.sub(replace, text)

    return walk(value, loc), problems


# --------------------------------------------------------------------------- env overrides


def _env_key(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def apply_env_overrides(
    raw: dict[str, Any], env: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """Apply ``POPBRIDGE_...`` variables to the parsed file, in place.

    The scheme: after the prefix, ``__`` separates levels; a level is a key in lower case
    (``POPBRIDGE_HTTP__LISTEN``), or the name of a mailbox or webhook written in upper case
    with ``-`` and ``.`` as ``_`` (``POPBRIDGE_MAILBOXES__SUPPORT__PASSWORD_FILE``). Only
    variables whose first level is a top-level key count; others (``POPBRIDGE_CORPUS``) are
    ignored. Values are strings, converted like YAML scalars by validation; a list of names
    is comma-separated. Setting a secret drops its ``*_file`` twin from the file, and the
    other way round.

    Returns problem lines and a map from the key path set to the variable that set it.
    """
    problems: list[str] = []
    origins: dict[str, str] = {}
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX):
            continue
        segments = var[len(ENV_PREFIX) :].split("__")
        if segments[0].lower() not in Config.model_fields:
            continue
        error = _apply_one(raw, segments, env[var], var, origins)
        if error:
            problems.append(f"{var}: {error}")
    return problems, origins


def _apply_one(
    raw: dict[str, Any], segments: list[str], value: str, var: str, origins: dict[str, str]
) -> str | None:
    if any(not s for s in segments):
        return "empty level in the name (three or more underscores in a row?)"
    node: Any = raw
    loc: Loc = ()
    for depth, segment in enumerate(segments):
        declared = _type_at(loc)
        last = depth == len(segments) - 1
        key: str | int
        if typing.get_origin(declared) is list and isinstance(node, list):
            matches = [
                i
                for i, item in enumerate(node)
                if isinstance(item, dict) and _env_key(str(item.get("name", ""))) == segment
            ]
            if len(matches) != 1:
                return (
                    f"no mailbox named like {segment!r} in the file; mailboxes are addressed "
                    "by name in upper case, e.g. POPBRIDGE_MAILBOXES__SUPPORT__PASSWORD_FILE"
                    if not matches
                    else f"{segment!r} matches more than one mailbox"
                )
            key = matches[0]
        elif typing.get_origin(declared) is dict and isinstance(node, dict):
            names = [k for k in node if _env_key(str(k)) == segment]
            if len(names) != 1:
                return (
                    f"no webhook named like {segment!r} in the file"
                    if not names
                    else f"{segment!r} matches more than one webhook"
                )
            key = names[0]
        elif isinstance(node, dict):
            key = segment.lower()
            if key == "headers":
                return "headers cannot be set from the environment; use ${VAR} in the file"
        else:
            return f"{format_loc(loc)} is not a mapping in the file"
        loc = (*loc, key)
        if last:
            target = _type_at(loc)
            existing = node[key] if isinstance(node, dict) and key in node else None
            if (
                isinstance(existing, dict)
                or (isinstance(target, type) and issubclass(target, BaseModel))
                or typing.get_origin(target) is dict
            ):
                return f"{format_loc(loc)} is a mapping; set its keys one by one"
            new: Any = value
            if typing.get_origin(target) is list:
                new = [item.strip() for item in value.split(",") if item.strip()]
            assert isinstance(key, str)  # a leaf is always a key of a mapping
            node[key] = new
            twin = _SECRET_PAIRS.get(key) or {v: k for k, v in _SECRET_PAIRS.items()}.get(key)
            if twin is not None:
                node.pop(twin, None)
            origins[format_loc(loc)] = var
            return None
        if isinstance(node, dict) and key not in node:
            declared_here = _type_at(loc)
            if not (isinstance(declared_here, type) and issubclass(declared_here, BaseModel)):
                return f"{format_loc(loc)} is not in the file"
            node[key] = {}
        node = node[key]
    return None


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate, override and validate the YAML file at ``path``.

    ``env`` defaults to ``os.environ``. Relative paths in the file resolve against the
    file's directory. Raises :class:`ConfigError` listing every problem found.
    """
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problem = f"cannot read the config file: {reason}"
        raise ConfigError(f"{source}: {problem}", [problem]) from None
    raw = parse_yaml(text, source)
    return _build(raw, os.environ if env is None else env, path.resolve().parent, source)


def _build(raw: dict[str, Any], env: Mapping[str, str], base_dir: Path, source: str) -> Config:
    interpolated, problems = interpolate(raw, env)
    if problems:
        _fail(source, problems)
    override_problems, origins = apply_env_overrides(interpolated, env)
    if override_problems:
        _fail(source, override_problems)
    try:
        config = Config.model_validate(interpolated, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems = list(_describe(exc, origins))
    else:
        # From now on every sink (log, ledger, dead letters, CLI) scrubs these secrets.
        register_secrets(config.secret_values())
        return config
    # Raised outside the except block so the ValidationError is not chained as context.
    _fail(source, problems)


def _fail(source: str, problems: list[str]) -> typing.NoReturn:
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    message = f"{source}: {count} in the configuration:\n" + "\n".join(f"  {p}" for p in problems)
    raise ConfigError(message, problems)


def _describe(exc: ValidationError, origins: Mapping[str, str]) -> Iterator[str]:
    """One line per problem; never the input value (it may be a secret)."""
    for error in exc.errors(include_url=False):
        loc: Loc = tuple(error["loc"])
        shape = _shape(error.get("input"))  # the kind of value only: never the value itself
        inner = (error.get("ctx") or {}).get("error")
        if isinstance(inner, _Problems):
            for sub_loc, message in inner.problems:
                yield _with_origin(format_loc((*loc, *sub_loc)), message, origins)
            continue
        kind = error["type"]
        message = error["msg"]
        if kind == "missing":
            message = "required key is missing"
        elif kind == "extra_forbidden":
            declared = _type_at(loc[:-1])
            fields = (
                list(declared.model_fields)
                if isinstance(declared, type) and issubclass(declared, BaseModel)
                else []
            )
            close = difflib.get_close_matches(str(loc[-1]), fields, n=1, cutoff=0.6)
            message = "unknown key" + (f"; did you mean {close[0]!r}?" if close else "")
        elif kind == "list_type":
            message = f"must be a list (one '- ' item per line), not {shape}"
        elif kind in ("dict_type", "model_type", "model_attributes_type"):
            message = f"must be a mapping ('key: value' lines), not {shape}"
        elif kind == "value_error" and message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        yield _with_origin(format_loc(loc), message, origins)


def _shape(value: object) -> str:
    """What kind of YAML value this is, for a message: ``a list``, ``a mapping``, ``text``."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    return "text"


def _with_origin(path: str, message: str, origins: Mapping[str, str]) -> str:
    for key, var in origins.items():
        if path == key or path.startswith((key + ".", key + "[")):
            return f"{path}: {message} (value from environment variable {var})"
    return f"{path}: {message}"


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the configuration file."""
    schema = Config.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "popbridge configuration",
        **{k: v for k, v in schema.items() if k != "title"},
    }
