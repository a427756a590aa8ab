"""An idle poll writes nothing to the ledger (issue 15): no transaction, no fsync.

With thousands of mostly idle mailboxes, every committed and fsynced write of a poll that
found nothing new blocks the event loop for a disk's fsync time (5-10 ms); a poll must
write only what changed.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from bridge.app import App
from bridge.config import Config
from tests.dovecot import Dovecot, Pop3User
from tests.integration.kit import config_dict, make_message
from tests.receiver import RecordedRequest, Reply, WebhookReceiver

pytestmark = pytest.mark.dovecot


def _files(data_dir: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of the ledger's database and WAL files."""
    out = {}
    for path in sorted(data_dir.glob("ledger.sqlite3*")):
        if not path.name.endswith("-shm"):  # the shared-memory index changes on reads
            stat = path.stat()
            out[path.name] = (stat.st_size, stat.st_mtime_ns)
    return out


async def test_an_idle_poll_writes_nothing_to_the_ledger(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """After a session that delivered two messages and parked a third (it stays on the
    server, so the next polls list it), later polls with nothing new leave the ledger's files
    untouched once the deleted ones are forgotten; a poll that finds new mail writes again
    (so the check can see a write)."""
    pop3_user.deliver_many(make_message(i, subject=s) for i, s in enumerate(["a", "refused", "b"]))

    def decide(request: RecordedRequest) -> Reply | None:
        return Reply(400) if request.json()["subject"] == "refused" else None

    receiver.decide(decide)
    app = App(Config.from_dict(config_dict(dovecot, pop3_user, receiver.url, tmp_path)))
    try:
        mailbox = app.mailboxes["inbox"]
        first = await app.session(mailbox, asyncio.Event())
        assert first.committed
        assert pop3_user.count() == 1  # the refused one stays, parked
        # The next poll forgets the two deleted messages (no longer listed): a real change.
        assert (await app.session(mailbox, asyncio.Event())).committed
        assert len(app.ledger.known_uidls("inbox")) == 1
        before = _files(tmp_path)
        assert before  # the ledger exists and was written
        for _ in range(3):
            os.sync()
            idle = await app.session(mailbox, asyncio.Event())
            assert idle.committed
            assert _files(tmp_path) == before
        pop3_user.deliver(make_message(9, subject="new"))
        await app.session(mailbox, asyncio.Event())
        assert _files(tmp_path) != before
    finally:
        await app.close()
    assert sorted(r.json()["subject"] for r in receiver.requests) == ["a", "b", "new", "refused"]
