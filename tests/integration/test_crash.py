"""The crash test: SIGKILL the bridge at random moments; nothing is lost, duplicates are bounded."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path

import pytest

from tests.dovecot import Dovecot, Pop3User
from tests.integration.kit import config_dict, make_message, write_config
from tests.receiver import Reply, WebhookReceiver

pytestmark = [pytest.mark.dovecot, pytest.mark.slow]

MESSAGES = int(os.environ.get("POPBRIDGE_CRASH_MESSAGES", "300"))
KILLS = int(os.environ.get("POPBRIDGE_CRASH_KILLS", "10"))


async def _start(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "once",
        "-c",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_sigkill_at_random_moments_loses_nothing(
    dovecot: Dovecot,
    pop3_user: Pop3User,
    receiver: WebhookReceiver,
    tmp_path: Path,
    concurrency: int,
) -> None:
    """After >= 10 SIGKILLs and restarts the mailbox is empty, every message arrived, and the
    extra POSTs number at most kills x deliveries in flight (with one in flight: the kills)."""
    rng = random.Random(20261126 + concurrency)
    pop3_user.deliver_many(make_message(i) for i in range(MESSAGES))
    receiver.reply(Reply(200, delay=0.015))  # a receiver with some latency, so kills land mid-work
    config = write_config(
        tmp_path / "bridge.yaml",
        config_dict(
            dovecot,
            pop3_user,
            receiver.url,
            tmp_path / "data",
            mailbox={
                "session_max_messages": 40,
                "delivery_concurrency": concurrency,
                "strict_order": concurrency == 1,
            },
        ),
    )
    kills = 0
    runs = 0
    while kills < KILLS and pop3_user.count() > 0:
        runs += 1
        seen = len(receiver.requests)
        proc = await _start(config)
        # Kill only once the process is doing real work: after its first new POST arrived.
        for _ in range(400):
            if len(receiver.requests) > seen or proc.returncode is not None:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(rng.uniform(0.0, 0.12))
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        await proc.wait()
        assert runs < KILLS * 5, "the bridge keeps finishing before it can be killed"
    assert kills >= KILLS, f"only {kills} kills before the mailbox emptied; slow the receiver"

    final = await _start(config)
    assert await asyncio.wait_for(final.wait(), timeout=120) == 0
    assert pop3_user.count() == 0
    ids = receiver.webhook_ids()
    assert len(set(ids)) == MESSAGES
    extra = len(ids) - MESSAGES
    assert 0 <= extra <= kills * concurrency, (extra, kills)
