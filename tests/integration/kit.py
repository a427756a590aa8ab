"""Helpers for end-to-end tests: configs that point the bridge at the test Dovecot and receiver."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import yaml

from tests.dovecot import Dovecot, Pop3User

SECRET = "whsec_" + base64.b64encode(b"popbridge-test-secret-32-bytes!!").decode()


def make_message(
    n: int, *, subject: str | None = None, body: str | None = None, size: int = 0
) -> bytes:
    """A small, distinct, deterministic message; ``size`` pads the body to about that many bytes."""
    msg = EmailMessage()
    msg["From"] = f"Sender {n} <sender{n}@example.org>"
    msg["To"] = "inbox@example.org"
    msg["Subject"] = subject or f"message {n}"
    msg["Message-ID"] = f"<msg-{n}@example.org>"
    msg["Date"] = "Thu, 26 Nov 2026 10:00:00 +0000"
    text = body or f"Body of message {n}.\n"
    if size > len(text):
        line = f"padding line for message {n} ".ljust(70, "x") + "\n"
        text += line * ((size - len(text)) // len(line))
    msg.set_content(text)
    return bytes(msg)


def config_dict(
    dovecot: Dovecot,
    user: Pop3User,
    url: str,
    data_dir: Path,
    *,
    mailbox: dict[str, Any] | None = None,
    webhooks: dict[str, dict[str, Any]] | None = None,
    port: int | None = None,
    tls: str = "starttls",
) -> dict[str, Any]:
    """A config for one mailbox on the test Dovecot delivering to ``url``."""
    box: dict[str, Any] = {
        "name": "inbox",
        "host": dovecot.host,
        "port": port or dovecot.port,
        "tls": tls,
        "ca_file": str(dovecot.ca_file),
        "username": user.name,
        "password": user.password,
        "poll_interval": 1,
        "webhooks": ["main"],
    }
    if tls == "none":
        box["allow_insecure_auth"] = True
    box.update(mailbox or {})
    hooks = webhooks or {
        "main": {
            "url": url,
            "secret": SECRET,
            "timeout": 5,
            "backoff_initial": 0.01,
            "backoff_max": 0.05,
        }
    }
    return {
        "data_dir": str(data_dir),
        "http": {"listen": "127.0.0.1:0"},
        "log": {"level": "warning", "format": "json"},
        "webhooks": hooks,
        "mailboxes": [box],
    }


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Write a config dict as YAML and return its path."""
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
