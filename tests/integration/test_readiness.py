"""Readiness means progress: ``popbridge run`` against the real Dovecot and receiver."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.dovecot import Dovecot, Pop3User, free_port
from tests.integration.kit import config_dict, make_message, write_config
from tests.integration.test_cli import _metric, _scrape, _stop, _wait_http
from tests.receiver import Reply, WebhookReceiver

pytestmark = pytest.mark.dovecot


async def _start(config: dict[str, Any], tmp_path: Path) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    config["http"] = {**config.get("http", {}), "listen": f"127.0.0.1:{port}"}
    config["metrics"] = {"mailbox_detail": "full"}  # sessions are asserted per mailbox
    path = write_config(tmp_path / "run.yaml", config)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "run", "-c", str(path),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    await _wait_http(base + "/healthz")
    return proc, base


async def test_readyz_stays_ready_through_a_first_drain_longer_than_the_stall_window(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """poll_interval 1, window 3 s: a first session draining for longer is ready throughout.

    Each delivered message is progress, so the pod stays ready during the busy moment
    (it used to answer 503 "no poll completed yet" until the first session ended).
    """
    count = 400
    pop3_user.deliver_many(make_message(i) for i in range(count))
    receiver.reply(Reply(200, delay=0.015))  # one at a time: the drain lasts several seconds
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    config["mailboxes"][0].update(delivery_concurrency=1, session_max_messages=10_000)
    config["http"] = {"stall_factor": 3, "stall_min_seconds": 1}
    proc, base = await _start(config, tmp_path)
    try:
        started = time.monotonic()
        statuses: list[int] = []
        first_session_outlived_the_window = False
        while len(receiver.requests) < count and time.monotonic() - started < 60:
            status, body = await _scrape(base + "/readyz")
            statuses.append(status)
            assert status == 200, body
            if time.monotonic() - started > 4.0:
                _, text = await _scrape(base + "/metrics")
                sessions = _metric(
                    text, "bridge_pop3_sessions_total", mailbox="inbox", outcome="ok"
                )
                first_session_outlived_the_window |= sessions == 0
            await asyncio.sleep(0.2)
        assert len(receiver.requests) == count
        # The scenario really happened: the first session was still running past the window.
        assert first_session_outlived_the_window
        assert len(statuses) > 15
    finally:
        assert await _stop(proc) == 0


async def test_failing_mailbox_keeps_the_replica_ready_and_is_reported(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A wrong password on one mailbox: /readyz is 200 and lists it; ?mailbox= answers 503."""
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    wrong = dict(config["mailboxes"][0], name="wrong", password="not-the-password")
    config["mailboxes"].append(wrong)
    proc, base = await _start(config, tmp_path)
    try:
        body: dict[str, Any] = {}
        for _ in range(150):
            status, text = await _scrape(base + "/readyz")
            body = json.loads(text)
            if "wrong" in body.get("failing", {}):
                break
            await asyncio.sleep(0.1)
        assert status == 200, body
        assert body["failing"]["wrong"].startswith("auth_error")
        assert "not-the-password" not in text
        status, text = await _scrape(base + "/readyz?mailbox=wrong")
        assert status == 503
        assert json.loads(text)["reason"].startswith("failing: auth_error")
    finally:
        assert await _stop(proc) == 0
