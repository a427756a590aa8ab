"""A reconcile DELE needs proof that the message on the server is the one acknowledged.

Session 1 delivers X, gets a 2xx, sends DELE; the server commits QUIT but its +OK never
arrives. Before session 2 the same identity is given to another message Y. Before the proof,
session 2 took the row as "acknowledged, died before QUIT" and deleted Y unposted (5 of 5
lost in each variant). The fake server produces the lost QUIT reply and the reuse; the real
Dovecot variant (%u UIDLs, rebuilt UID list) is in tests/integration/test_safety.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bridge.app import App
from bridge.config import Config
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import SECRET, make_message
from tests.receiver import Reply, WebhookReceiver


def _config(server: FakePop3Server, url: str, data_dir: Path, **mailbox: Any) -> Config:
    box = server.mailbox_config("fake", ["main"], **mailbox)
    hook = {"url": url, "secret": SECRET, "backoff_initial": 0.01, "backoff_max": 0.02}
    return Config.from_dict(
        {
            "data_dir": str(data_dir),
            "webhooks": {"main": hook},
            "mailboxes": [box],
            "metrics": {"mailbox_detail": "full"},  # asserted per mailbox
        },
        env={},
    )


async def _session(config: Config) -> tuple[App, Any]:
    app = App(config)
    try:
        result = await app.session(app.mailboxes["fake"], asyncio.Event())
    finally:
        await app.close()
    return app, result


def _texts(receiver: WebhookReceiver) -> list[str]:
    return [r.json()["text"] for r in receiver.requests]


async def test_positional_uidl_reused_after_a_lost_quit_reply_is_posted(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """UIDL "1" is X in session 1 (QUIT committed, reply lost) and Y in session 2: Y is posted
    under a new webhook-id, then deleted; X is not posted again."""
    fake_pop3.add(make_message(1, body="alpha message\n"), uid="1")
    fake_pop3.swallow_reply_on("QUIT")
    config = _config(fake_pop3, receiver.url, tmp_path)
    _, first = await _session(config)
    assert not first.committed  # the bridge never saw QUIT's +OK
    assert fake_pop3.messages == []  # but the server committed it
    fake_pop3.add(make_message(2, body="bravo message, longer\n"), uid="1")
    app, second = await _session(config)
    assert second.committed
    assert second.reconciled == 0
    assert second.reused_identities == 1
    assert _texts(receiver) == ["alpha message\n", "bravo message, longer\n"]
    assert len(receiver.distinct_webhook_ids()) == 2
    assert fake_pop3.messages == []
    metrics = app.metrics.render().decode()
    assert 'bridge_identity_problems_total{kind="reused",mailbox="fake"} 1.0' in metrics


async def test_same_size_reuse_is_caught_by_the_content_hash(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """The LIST size matches (same length), only the SHA-256 tells X and Y apart."""
    x = make_message(1, body="alpha\n")
    y = make_message(1, body="bravo\n")
    assert len(x) == len(y)
    assert x != y
    fake_pop3.add(x, uid="1")
    fake_pop3.swallow_reply_on("QUIT")
    config = _config(fake_pop3, receiver.url, tmp_path)
    await _session(config)
    fake_pop3.add(y, uid="1")
    _, second = await _session(config)
    assert second.reused_identities == 1
    assert _texts(receiver) == ["alpha\n", "bravo\n"]
    assert fake_pop3.messages == []


async def test_header_identity_reused_after_a_lost_quit_reply_is_posted(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A server without UIDL: Y has X's Message-ID, Date, From, Subject and size."""
    server = FakePop3Server([make_message(1, body="alpha\n")], uidl=False)
    server.swallow_reply_on("QUIT")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path)
        await _session(config)
        assert server.messages == []
        server.add(make_message(1, body="bravo\n"))
        _, second = await _session(config)
        assert second.committed
        assert _texts(receiver) == ["alpha\n", "bravo\n"]
        assert server.messages == []
    finally:
        await server.stop()


async def test_proven_message_is_deleted_without_a_repost(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """The other side of the rule: the very message acknowledged (QUIT's reply lost, nothing
    committed) is deleted in the next session without being posted again."""
    for i in range(5):
        fake_pop3.add(make_message(i))
    fake_pop3.drop_on("QUIT")
    config = _config(fake_pop3, receiver.url, tmp_path)
    await _session(config)
    assert len(fake_pop3.messages) == 5
    _, second = await _session(config)
    assert second.reconciled == 5
    assert second.delivered == 0
    assert len(receiver.requests) == 5
    assert fake_pop3.messages == []


async def test_server_that_did_not_remove_a_committed_message_is_not_reposted(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Courier answers QUIT before the files are gone: a message whose deletion was committed
    and that is listed again with the same content is deleted again, not posted twice."""
    raw = make_message(1)
    fake_pop3.add(raw, uid="c1")
    config = _config(fake_pop3, receiver.url, tmp_path)
    _, first = await _session(config)
    assert first.committed
    assert fake_pop3.messages == []
    fake_pop3.add(raw, uid="c1")  # still there after all
    _, second = await _session(config)
    assert second.reconciled == 1
    assert len(receiver.requests) == 1
    assert fake_pop3.messages == []


async def test_partially_acknowledged_identity_reused_reaches_every_target(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """X was acknowledged by target a but not b; X vanishes and Y takes its UIDL. Y must reach
    a as well (not only b), under a new identity, before it is deleted."""
    fake_pop3.add(make_message(1, body="alpha\n"), uid="1")
    box = fake_pop3.mailbox_config("fake", ["a", "b"])
    hooks = {
        name: {
            "url": f"{receiver.url}?t={name}",
            "secret": SECRET,
            "backoff_initial": 0.01,
            "backoff_max": 0.02,
            "max_attempts": 1,
        }
        for name in ("a", "b")
    }
    config = Config.from_dict(
        {"data_dir": str(tmp_path), "webhooks": hooks, "mailboxes": [box]}, env={}
    )
    receiver.decide(lambda r: Reply(503) if r.query == "t=b" else None)
    await _session(config)
    assert len(fake_pop3.messages) == 1  # b failed: X stays
    fake_pop3.messages.clear()
    fake_pop3.add(make_message(2, body="bravo\n"), uid="1")
    receiver.decide(None)
    await _session(config)
    got = [(r.query.removeprefix("t="), r.json()["text"]) for r in receiver.requests]
    assert ("a", "bravo\n") in got
    assert ("b", "bravo\n") in got
    assert fake_pop3.messages == []
