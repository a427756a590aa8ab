"""The shipped example config and the config documentation stay true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.config import (
    AttachmentsConfig,
    BasicAuthConfig,
    Config,
    HttpConfig,
    LogConfig,
    MailboxConfig,
    OAuth2Config,
    WebhookConfig,
    load_config,
)
from bridge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "config.example.yaml"
DOC = ROOT / "docs" / "config.md"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

# The example points at /run/secrets/...; a deployment mounts those, the test overrides them.
ENV = {
    "WEBHOOK_SECRET": SECRET,
    "POPBRIDGE_WEBHOOKS__ARCHIVE__SECRET": SECRET,
    "POPBRIDGE_WEBHOOKS__ARCHIVE__BEARER_TOKEN": "archive-token",
    "POPBRIDGE_MAILBOXES__SUPPORT__PASSWORD": "support-password",
    "POPBRIDGE_MAILBOXES__SALES_EU__TOKEN": "oauth-token",
}


def test_example_config_is_valid() -> None:
    """deploy/config.example.yaml loads once its secrets are provided through the environment."""
    config = load_config(EXAMPLE, env=ENV)
    assert [m.name for m in config.mailboxes] == ["support", "sales-eu"]
    assert sorted(config.webhooks) == ["archive", "main"]
    sales = config.mailbox("sales-eu")
    assert (sales.tls, sales.port, sales.auth) == ("starttls", 110, "xoauth2")


def test_example_config_needs_its_secrets() -> None:
    """Without the environment, the example fails on the missing variable, naming it."""
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLE, env={})
    assert info.value.problems == [
        "webhooks.main.secret: environment variable WEBHOOK_SECRET is not set; "
        "export WEBHOOK_SECRET=... or write the value (or a *_file) in the file"
    ]


@pytest.mark.parametrize(
    "model",
    [
        Config,
        HttpConfig,
        LogConfig,
        WebhookConfig,
        BasicAuthConfig,
        MailboxConfig,
        AttachmentsConfig,
        OAuth2Config,
    ],
)
def test_every_key_is_documented(model: type[Config]) -> None:
    """docs/config.md has a table row for every config key (`key` in the first column)."""
    documented = set(re.findall(r"^\| `([a-z0-9_]+)`", DOC.read_text(encoding="utf-8"), re.M))
    missing = set(model.model_fields) - documented
    assert not missing, f"keys missing from docs/config.md: {sorted(missing)}"
