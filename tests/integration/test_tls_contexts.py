"""TLS contexts are built once per distinct TLS setting and shared by every session.

Against the real Dovecot (STLS and implicit TLS, certificates from the test CA), so the
shared context really verifies certificates and host names on every connection.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import trustme

from bridge.app import App
from bridge.config import Config
from tests.dovecot import Dovecot
from tests.integration.kit import config_dict, make_message
from tests.receiver import WebhookReceiver

pytestmark = pytest.mark.dovecot


def _config(
    dovecot: Dovecot, receiver: WebhookReceiver, data_dir: Path, boxes: list[dict[str, Any]]
) -> Config:
    users = [dovecot.new_user() for _ in boxes]
    mailboxes = []
    for i, (user, extra) in enumerate(zip(users, boxes, strict=True)):
        user.deliver_many(make_message(i * 10 + n) for n in range(2))
        box = config_dict(dovecot, user, receiver.url, data_dir)["mailboxes"][0]
        box.update({"name": f"box{i}", **extra})
        mailboxes.append(box)
    data = config_dict(dovecot, users[0], receiver.url, data_dir)
    data["mailboxes"] = mailboxes
    return Config.from_dict(data, env={})


async def test_one_context_serves_every_mailbox_and_session(
    dovecot: Dovecot, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Four mailboxes, STLS and implicit TLS, with the same CA: two passes, one context built;
    a CA file changed on disk (new mtime) is picked up with one new context, and it is the
    one the sessions use: another CA in that file makes them fail verification."""
    ca = tmp_path / "ca.pem"
    ca.write_bytes(dovecot.ca_file.read_bytes())
    implicit = {"tls": "implicit", "port": dovecot.tls_port, "ca_file": str(ca)}
    config = _config(dovecot, receiver, tmp_path, [{"ca_file": str(ca)}] * 2 + [implicit] * 2)
    app = App(config)
    try:
        assert await app.once()
        assert len(receiver.requests) == 8
        assert app.tls.built == 1
        assert await app.once()
        assert app.tls.built == 1
        stat = ca.stat()
        os.utime(ca, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        assert await app.once()
        assert app.tls.built == 2
        assert len(app.tls) == 1  # the stale context was replaced, not kept beside it
        trustme.CA().cert_pem.write_to_path(str(ca))
        os.utime(ca, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
        assert not await app.once()
        assert app.tls.built == 3
    finally:
        await app.close()


async def test_distinct_settings_get_distinct_contexts_and_the_system_store_works(
    dovecot: Dovecot, receiver: WebhookReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mailbox without ca_file verifies against the default trust store (here the test CA
    through SSL_CERT_FILE, as the benchmark does); it gets its own context, separate from
    the ca_file mailboxes and from tls_verify: false."""
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.ca_file))
    boxes = [{}, {"ca_file": None}, {"ca_file": None}, {"tls_verify": False, "ca_file": None}]
    app = App(_config(dovecot, receiver, tmp_path, boxes))
    try:
        assert await app.once()
        assert len(receiver.requests) == 8
        assert app.tls.built == 3
    finally:
        await app.close()
