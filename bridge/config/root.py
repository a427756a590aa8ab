"""The whole file (:class:`Config`) and the public ways to load it."""

from __future__ import annotations

import difflib
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import Field, model_validator

from bridge.config.env import _apply_env_overrides
from bridge.config.fields import NAME_PATTERN, ConfigPath, Loc, _Model, _Problems
from bridge.config.loading import _validate
from bridge.config.mailbox import MailboxConfig, OAuth2Config
from bridge.config.service import AttachmentsConfig, HttpConfig, LogConfig, MetricsConfig
from bridge.config.webhook import WebhookConfig
from bridge.errors import ConfigError
from bridge.redact import register as register_secrets
from bridge.yamlfile import parse_yaml


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
    return _apply_env_overrides(Config, raw, env)


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
    config = _validate(Config, raw, env, base_dir, source)
    # From now on every sink (log, ledger, dead letters, CLI) scrubs these secrets.
    register_secrets(config.secret_values())
    return config


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the configuration file."""
    schema = Config.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "popbridge configuration",
        **{k: v for k, v in schema.items() if k != "title"},
    }
