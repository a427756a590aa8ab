"""Config and secrets that change without a restart: ``popbridge run`` against real Dovecot.

SIGHUP (sent by ``popbridge reload``) re-reads the config: a mailbox added starts polling,
one removed stops, an invalid file is logged and ignored while the old config keeps
running. ``*_file`` secrets are read again at each session when they changed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.dovecot import Dovecot, Pop3User, free_port
from tests.integration.kit import config_dict, make_message, write_config
from tests.integration.test_cli import _metric, _scrape, _stop, _wait_http, popbridge
from tests.receiver import RecordedRequest, Reply, WebhookReceiver

pytestmark = pytest.mark.dovecot


class Service:
    """``popbridge run`` in a subprocess, its JSON log in a file."""

    def __init__(self, config: dict[str, Any], tmp_path: Path) -> None:
        self.port = free_port()
        config["http"] = {"listen": f"127.0.0.1:{self.port}"}
        config["log"] = {"level": "info", "format": "json"}
        self.config = config
        self.path = tmp_path / "run.yaml"
        self.log_path = tmp_path / "run.log"
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None

    def write(self) -> None:
        write_config(self.path, self.config)

    async def start(self) -> None:
        self.write()
        with self.log_path.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bridge", "run", "-c", str(self.path),
                stdout=out, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        await _wait_http(self.base + "/healthz")

    def events(self, name: str) -> list[dict[str, Any]]:
        lines = self.log_path.read_text().splitlines()
        found = [json.loads(line) for line in lines if line.startswith("{")]
        return [e for e in found if e.get("event") == name]

    async def metric(self, name: str, **labels: str) -> float:
        _, text = await _scrape(self.base + "/metrics")
        return _metric(text, name, **labels)

    async def wait_metric(self, value: float, name: str, **labels: str) -> None:
        for _ in range(300):
            if await self.metric(name, **labels) == value:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{name}{labels} never became {value}")

    async def stop(self) -> int:
        assert self.proc is not None
        return await _stop(self.proc)


def _mailbox(dovecot: Dovecot, user: Pop3User, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "host": dovecot.host,
        "port": dovecot.port,
        "tls": "starttls",
        "ca_file": str(dovecot.ca_file),
        "username": user.name,
        "password": user.password,
        "poll_interval": 1,
        "webhooks": ["main"],
    }


def _from(request: RecordedRequest) -> str:
    return str(request.json()["mailbox"])


async def test_sighup_adds_and_removes_a_mailbox_without_stopping(
    dovecot: Dovecot, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Reload swaps mailbox ``old`` for ``new``: the process keeps running, ``new`` delivers,
    ``old`` is no longer polled, and the metrics count the reload and show the new hash."""
    old_user, new_user = dovecot.new_user(), dovecot.new_user()
    config = config_dict(dovecot, old_user, receiver.url, tmp_path / "data")
    config["mailboxes"] = [_mailbox(dovecot, old_user, "old")]
    service = Service(config, tmp_path)
    await service.start()
    try:
        old_user.deliver(make_message(1))
        await receiver.wait_for(1, within=20)
        assert service.events("started")
        _, text = await _scrape(service.base + "/metrics")
        assert 'bridge_config_info{hash="' in text

        config["mailboxes"] = [_mailbox(dovecot, new_user, "new")]
        service.write()
        code, out, err = await popbridge("reload", "-c", str(service.path))
        assert code == 0, err
        assert "sent SIGHUP" in out
        await service.wait_metric(1, "bridge_config_reloads_total", outcome="ok")

        new_user.deliver(make_message(2))
        old_user.deliver(make_message(3))
        await receiver.wait_for(2, within=20)
        await asyncio.sleep(2.5)  # old polled every second before: give it time to show up
        assert [_from(r) for r in receiver.requests] == ["old", "new"]
        assert old_user.count() == 1  # left alone once removed
        assert new_user.count() == 0
        assert service.proc is not None
        assert service.proc.returncode is None
        (event,) = service.events("config_reloaded")
        assert event["added"] == ["new"]
        assert event["removed"] == ["old"]
        _, text = await _scrape(service.base + "/metrics")
        assert f'bridge_config_info{{hash="{event["hash"]}"}} 1.0' in text
        assert text.count("bridge_config_info{") == 1
        status, body = await _scrape(service.base + "/readyz?mailbox=old")
        assert status == 404, body
    finally:
        assert await service.stop() == 0


async def test_an_invalid_config_is_logged_and_the_old_one_keeps_running(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A SIGHUP with a broken file: failed reload counted and logged with the key path;
    the process does not stop and still delivers with the old config."""
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    service = Service(config, tmp_path)
    await service.start()
    try:
        config["mailboxes"][0]["poll_interval"] = 0  # invalid: must be >= 1
        service.write()
        assert service.proc is not None
        os.kill(service.proc.pid, signal.SIGHUP)
        await service.wait_metric(1, "bridge_config_reloads_total", outcome="failed")
        pop3_user.deliver(make_message(1))
        await receiver.wait_for(1, within=20)
        assert service.proc.returncode is None
        (event,) = service.events("config_reload_failed")
        assert any(p.startswith("mailboxes[0].poll_interval") for p in event["problems"])
        assert await service.metric("bridge_config_reloads_total", outcome="ok") == 0
        # popbridge reload refuses to signal with an invalid file, and says why.
        code, _, err = await popbridge("reload", "-c", str(service.path))
        assert code == 2
        assert "mailboxes[0].poll_interval" in err
    finally:
        assert await service.stop() == 0


async def test_a_rotated_password_file_is_used_at_the_next_session(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """password_file rewritten in place (as Kubernetes does): the next session logs in with
    the new password, without a reload or restart."""
    secret = tmp_path / "pop3-password"
    secret.write_text("the-old-and-wrong-password\n")
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    config["metrics"] = {"mailbox_detail": "full"}  # sessions are asserted per mailbox
    box = config["mailboxes"][0]
    del box["password"]
    box.update(password_file=str(secret), login_backoff_auth=1)
    pop3_user.deliver(make_message(1))
    service = Service(config, tmp_path)
    await service.start()
    try:
        for _ in range(100):
            if await service.metric("bridge_pop3_sessions_total", mailbox="inbox",
                                    outcome="auth_error") >= 1:  # fmt: skip
                break
            await asyncio.sleep(0.1)
        assert receiver.requests == []
        # An atomic swap like a Kubernetes Secret update: write aside, rename over.
        fresh = tmp_path / "pop3-password.new"
        fresh.write_text(pop3_user.password + "\n")
        fresh.rename(secret)
        await receiver.wait_for(1, within=20)
        assert service.events("secret_file_reread")
        assert pop3_user.password not in service.log_path.read_text()
    finally:
        assert await service.stop() == 0


async def test_a_rotated_bearer_token_file_is_sent_from_the_next_session(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """bearer_token_file rewritten: the receiver that only accepts the new token gets it."""
    token = tmp_path / "token"
    token.write_text("first-token-0123456789\n")
    receiver.decide(
        lambda r: (
            None
            if r.headers.get("Authorization") == "Bearer second-token-0123456789"
            else Reply(401)
        )
    )
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    config["webhooks"]["main"]["bearer_token_file"] = str(token)
    config["mailboxes"][0]["reject_policy"] = "park"
    pop3_user.deliver(make_message(1))
    service = Service(config, tmp_path)
    await service.start()
    try:
        await receiver.wait_for(1, within=20)
        assert receiver.requests[0].answered == 401
        token.write_text("second-token-0123456789\n")
        pop3_user.deliver(make_message(2))  # the first one is parked for a long while
        for _ in range(200):
            if any(r.answered == 200 for r in receiver.requests):
                break
            await asyncio.sleep(0.1)
        assert any(r.answered == 200 for r in receiver.requests)
        assert "second-token-0123456789" not in service.log_path.read_text()
    finally:
        assert await service.stop() == 0


async def test_reload_without_a_running_service_says_so(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Nothing holds the data_dir lock: exit 1, and no signal is sent anywhere."""
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    path = write_config(tmp_path / "c.yaml", config)
    code, _, err = await popbridge("reload", "-c", str(path))
    assert code == 1
    assert "no running popbridge holds data_dir" in err
