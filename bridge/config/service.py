"""The service-wide sections: ``http``, ``log``, ``metrics`` and ``attachments``."""

from __future__ import annotations

from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from bridge.config.fields import ConfigPath, SecretFileField, _Model, _Problems, parse_listen


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
