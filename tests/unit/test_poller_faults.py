"""The poller under faults Dovecot will not produce, on the fake POP3 server and a real receiver."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.app import App
from bridge.config import Config
from bridge.errors import Pop3ConnectionError, Pop3SysTempError
from bridge.ledger import Ledger, RowState
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import SECRET, make_message
from tests.receiver import Reply, WebhookReceiver


def _config(server: FakePop3Server, url: str, data_dir: Path, **mailbox: Any) -> Config:
    box = server.mailbox_config("fake", ["main"], **mailbox)
    return Config.from_dict(
        {
            "data_dir": str(data_dir),
            "webhooks": {
                "main": {"url": url, "secret": SECRET, "backoff_initial": 0.01, "backoff_max": 0.02}
            },
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


async def test_dele_error_is_counted_and_the_message_is_not_reposted(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """-ERR to DELE is a commit failure (metric, result); the next session deletes it unposted."""
    for i in range(3):
        fake_pop3.add(make_message(i))
    fake_pop3.reply_on("DELE", "-ERR [SYS/TEMP] cannot mark right now", nth=2)
    app, result = await _session(_config(fake_pop3, receiver.url, tmp_path))
    assert result.committed
    assert len(result.commit_errors) == 1
    assert "DELE" in result.commit_errors[0]
    metrics = app.metrics.render().decode()
    assert 'bridge_commit_failures_total{command="DELE",mailbox="fake"} 1.0' in metrics
    assert 'bridge_pop3_error_responses_total{code="SYS/TEMP",mailbox="fake"} 1.0' in metrics
    assert len(fake_pop3.messages) == 1  # two deleted at QUIT, one left
    assert len(receiver.requests) == 3

    _, result = await _session(_config(fake_pop3, receiver.url, tmp_path))
    assert result.reconciled == 1
    assert result.committed
    assert fake_pop3.messages == []
    assert len(receiver.requests) == 3  # acknowledged before: deleted without a new POST


async def test_quit_error_commits_nothing_and_next_session_reconciles(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """-ERR to QUIT means no deletion is committed; it is counted and the next session fixes it."""
    for i in range(2):
        fake_pop3.add(make_message(i))
    fake_pop3.reply_on("QUIT", "-ERR [SYS/PERM] could not remove messages")
    app, result = await _session(_config(fake_pop3, receiver.url, tmp_path))
    assert not result.committed
    assert any(e.startswith("QUIT") for e in result.commit_errors)
    metrics = app.metrics.render().decode()
    assert 'bridge_commit_failures_total{command="QUIT",mailbox="fake"} 1.0' in metrics
    assert 'bridge_pop3_sessions_total{mailbox="fake",outcome="commit_error"} 1.0' in metrics
    assert len(fake_pop3.messages) == 2

    _, result = await _session(_config(fake_pop3, receiver.url, tmp_path))
    assert result.committed
    assert result.reconciled == 2
    assert fake_pop3.messages == []
    assert len(receiver.requests) == 2


async def test_drop_in_the_middle_of_retr_keeps_what_was_acknowledged(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A connection lost mid-RETR fails the session; nothing is lost or posted twice after."""
    for i in range(6):
        fake_pop3.add(make_message(i))
    fake_pop3.drop_mid_response_on("RETR", nth=4)
    app = App(_config(fake_pop3, receiver.url, tmp_path, delivery_concurrency=1))
    try:
        with pytest.raises(Pop3ConnectionError):
            await app.mailboxes["fake"].poller.run_session()
    finally:
        await app.close()
    assert len(fake_pop3.messages) == 6  # no QUIT: nothing deleted
    posted = len(receiver.requests)
    assert posted == 3

    _, result = await _session(_config(fake_pop3, receiver.url, tmp_path))
    assert result.committed
    assert result.reconciled == 3
    assert fake_pop3.messages == []
    assert len(receiver.requests) == 6
    assert len(receiver.distinct_webhook_ids()) == 6


async def test_server_without_uidl_uses_header_identity(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Without UIDL the identity comes from TOP headers + size, stable across sessions."""
    server = FakePop3Server([make_message(i) for i in range(3)], uidl=False)
    await server.start()
    try:
        receiver.reply(500)
        config = _config(server, receiver.url, tmp_path)
        _, first = await _session(config)
        assert first.transient == 3
        ids_first = receiver.distinct_webhook_ids()
        receiver.reply(200)
        receiver.clear()
        _, second = await _session(config)
        assert second.delivered == 3
        assert receiver.distinct_webhook_ids() == ids_first  # same identity, same webhook-id
        assert server.messages == []
        assert "TOP" in server.verbs
    finally:
        await server.stop()


async def test_duplicate_and_overlong_uidls_are_reported_and_kept_apart(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Duplicate UIDLs get distinct identities; an over-long UIDL is hashed; all are delivered."""
    server = FakePop3Server()
    server.add(make_message(0), uid="same")
    server.add(make_message(1), uid="same")
    server.add(make_message(2), uid="x" * 200)
    await server.start()
    try:
        _, result = await _session(_config(server, receiver.url, tmp_path))
        assert result.delivered == 3
        assert result.committed
        assert len(result.identity_problems) == 2  # one duplicate pair, one over-long UIDL
        assert len(receiver.distinct_webhook_ids()) == 3
        uidls = {r.json()["uidl"] for r in receiver.requests}
        assert all(len(u) <= 70 for u in uidls)
        assert server.messages == []
    finally:
        await server.stop()


async def test_dead_letter_policy_spools_then_deletes(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """With reject_policy dead_letter a rejected message is written to disk, then deleted."""
    raw = make_message(7, subject="bad one")
    fake_pop3.add(raw)
    receiver.reply(422)
    app, result = await _session(
        _config(fake_pop3, receiver.url, tmp_path, reject_policy="dead_letter")
    )
    assert result.dead_lettered == 1
    assert result.committed
    assert fake_pop3.messages == []
    letters = app.deadletters.list("fake")
    assert len(letters) == 1
    assert letters[0].read() == raw.replace(b"\n", b"\r\n")
    assert "422" in letters[0].reason
    assert letters[0].meta["webhook_id"] == receiver.requests[0].headers["webhook-id"]
    assert (
        'bridge_messages_dead_lettered_total{mailbox="fake"} 1.0' in app.metrics.render().decode()
    )


async def test_parked_message_is_not_fetched_again_before_its_time(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A rejected message (default policy park) stays and is not RETRieved in the next session."""
    fake_pop3.add(make_message(1))
    receiver.reply(400)
    config = _config(fake_pop3, receiver.url, tmp_path)
    _, first = await _session(config)
    assert first.rejected == 1
    retr_before = fake_pop3.verbs.count("RETR")
    _, second = await _session(config)
    assert second.skipped == 1
    assert fake_pop3.verbs.count("RETR") == retr_before
    assert len(fake_pop3.messages) == 1
    assert len(receiver.requests) == 1


async def test_noop_keeps_the_session_alive_while_a_webhook_is_slow(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """While a slow receiver answers, the session sends NOOP instead of sitting idle."""
    fake_pop3.add(make_message(1))
    receiver.reply(Reply(200, delay=2.6))
    # keepalive_interval is min(30 s, command_timeout): 1 s here
    _, result = await _session(_config(fake_pop3, receiver.url, tmp_path, command_timeout=1))
    assert result.delivered == 1
    verbs = fake_pop3.verbs
    between = verbs[verbs.index("RETR") : verbs.index("DELE")]
    assert between.count("NOOP") >= 2


async def test_target_added_to_the_config_later_gets_the_waiting_messages(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A message seen under an old config is delivered to a target added since."""
    fake_pop3.add(make_message(1))
    receiver.reply(500)
    await _session(_config(fake_pop3, receiver.url, tmp_path))
    receiver.reply(200)
    receiver.clear()
    second = WebhookReceiver(path="/second")
    await second.start()
    try:
        wider = Config.from_dict(
            {
                "data_dir": str(tmp_path),
                "webhooks": {
                    "main": {"url": receiver.url, "secret": SECRET},
                    "second": {"url": second.url, "secret": SECRET},
                },
                "mailboxes": [fake_pop3.mailbox_config("fake", ["main", "second"])],
            },
            env={},
        )
        _, result = await _session(wider)
        assert result.delivered == 1
        assert len(receiver.requests) == 1
        assert len(second.requests) == 1
        assert fake_pop3.messages == []
    finally:
        await second.stop()


def _two_targets(server: FakePop3Server, a: str, b: str, data_dir: Path, **box: Any) -> Config:
    return Config.from_dict(
        {
            "data_dir": str(data_dir),
            "webhooks": {
                "a": {"url": a, "secret": SECRET, "max_attempts": 1},
                "b": {"url": b, "secret": SECRET, "max_attempts": 1},
            },
            "mailboxes": [server.mailbox_config("fake", ["a", "b"], **box)],
        },
        env={},
    )


async def test_dead_letter_waits_while_another_target_only_failed_for_now(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """One target rejects, the other answers 503: the message stays on the server (it is not
    dead-lettered and deleted behind the back of the target that may still take it)."""
    fake_pop3.add(make_message(1))
    other = WebhookReceiver(path="/b", reply=503)
    await other.start()
    try:
        receiver.reply(400)
        config = _two_targets(
            fake_pop3, receiver.url, other.url, tmp_path, reject_policy="dead_letter"
        )
        app, result = await _session(config)
        assert result.dead_lettered == 0
        assert len(fake_pop3.messages) == 1
        assert app.deadletters.list("fake") == []
        other.reply(200)  # b recovers: now every target has answered for good
        app, result = await _session(config)
        assert result.dead_lettered == 1
        assert fake_pop3.messages == []
        assert len(other.requests) == 2
    finally:
        await other.stop()


async def test_colliding_header_identities_are_told_apart_by_content(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Without UIDL, two different messages with the same headers and size get different
    identities, so neither is dropped as a duplicate nor deleted unposted."""
    first = make_message(1, body="alpha\n")
    second = make_message(1, body="bravo\n")
    assert first != second
    assert len(first) == len(second)
    server = FakePop3Server([first, second], uidl=False)
    await server.start()
    try:

        def decide(request: Any) -> Reply | None:
            return Reply(500) if "bravo" in request.json()["text"] else None

        receiver.decide(decide)
        _, result = await _session(_config(server, receiver.url, tmp_path))
        assert result.identity_problems
        assert len(receiver.distinct_webhook_ids()) == 2
        assert len(server.messages) == 1  # alpha delivered and deleted, bravo kept
        receiver.decide(None)
        await _session(_config(server, receiver.url, tmp_path))
        assert server.messages == []
        texts = [r.json()["text"] for r in receiver.requests]
        assert texts.count("alpha\n") == 1  # never posted twice
        assert texts[-1] == "bravo\n"  # and bravo, refused at first, made it in the end
    finally:
        await server.stop()


async def test_uidl_error_from_a_server_that_offers_uidl_fails_the_session(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A passing -ERR to UIDL does not switch identities (that would repost everything)."""
    fake_pop3.add(make_message(1))
    fake_pop3.reply_on("UIDL", "-ERR [SYS/TEMP] try again later")
    app = App(_config(fake_pop3, receiver.url, tmp_path))
    try:
        with pytest.raises(Pop3SysTempError):
            await app.mailboxes["fake"].poller.run_session()
    finally:
        await app.close()
    assert receiver.requests == []
    assert len(fake_pop3.messages) == 1


async def test_removing_a_target_from_the_config_unblocks_its_messages(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Rows of a target that is no longer configured do not hold a message on the server."""
    fake_pop3.add(make_message(1))
    other = WebhookReceiver(path="/b", reply=503)
    await other.start()
    try:
        await _session(_two_targets(fake_pop3, receiver.url, other.url, tmp_path))
        assert len(fake_pop3.messages) == 1
        _, result = await _session(_config(fake_pop3, receiver.url, tmp_path))  # only "main"
    finally:
        await other.stop()
    assert result.committed
    assert fake_pop3.messages == []


async def test_message_larger_than_listed_is_held_back_not_retried_forever(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A message whose RETR passes the limit although LIST said it fits is skipped and held
    back in the same session (its body read and dropped): the other messages flow, QUIT
    commits, and the next session does not fetch it again before its backoff. Nobody refused
    it, so it waits as a transient failure (not parked, never dead-lettered for it)."""
    fake_pop3.add(make_message(1, size=200_000))
    fake_pop3.add(make_message(2))
    fake_pop3.reply_on("LIST", "+OK\r\n1 500\r\n2 300\r\n.")
    config = _config(fake_pop3, receiver.url, tmp_path, max_message_bytes=1000)
    app, result = await _session(config)
    assert result.committed
    assert result.retr_failed == 1
    assert [m.uid for m in fake_pop3.messages] == ["uid-000001"]
    assert [r.json()["subject"] for r in receiver.requests] == ["message 2"]
    metrics = app.metrics.render().decode()
    assert 'bridge_retr_failures_total{mailbox="fake",reason="too_large"} 1.0' in metrics
    assert 'bridge_messages_oversize_total{mailbox="fake"} 1.0' in metrics
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        row = ledger.rows_for("fake", "uid-000001")["main"]
    assert row.state is RowState.TRANSIENT
    assert row.retr_failures == 1
    assert (row.next_attempt_at or 0) > time.time() + 60
    retrs = fake_pop3.verbs.count("RETR")
    _, result = await _session(config)
    assert result.committed
    assert result.skipped == 1
    assert fake_pop3.verbs.count("RETR") == retrs  # parked: not fetched again yet


async def test_cancelled_session_stops_its_deliveries(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Cancelling a session (shutdown grace expired) cancels its deliveries: no POST starts
    after the cancellation and nothing is deleted."""
    for i in range(12):
        fake_pop3.add(make_message(i))
    receiver.reply(Reply(200, delay=0.5))
    app = App(_config(fake_pop3, receiver.url, tmp_path))
    try:
        session = asyncio.create_task(app.mailboxes["fake"].poller.run_session())
        await receiver.wait_for(1, within=5)
        session.cancel()
        with pytest.raises(asyncio.CancelledError):
            await session
        started = len(receiver.requests)
        await asyncio.sleep(1.0)
        assert len(receiver.requests) == started
    finally:
        await app.close()
    assert len(fake_pop3.messages) == 12


async def test_noop_error_does_not_break_the_session(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A -ERR to a keep-alive NOOP is logged; the session still deletes and commits."""
    fake_pop3.add(make_message(1))
    fake_pop3.reply_on("NOOP", "-ERR not now")
    receiver.reply(Reply(200, delay=1.6))
    _, result = await _session(_config(fake_pop3, receiver.url, tmp_path, command_timeout=1))
    assert result.committed
    assert result.deleted == 1
    assert "NOOP" in fake_pop3.verbs


async def test_uidl_reused_after_a_committed_deletion_is_posted_not_deleted(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A UIDL listed again after its message's deletion was committed belongs to a new
    message: it is posted (under a new webhook-id), never deleted unposted."""
    fake_pop3.add(make_message(1, subject="first"), uid="reused")
    config = _config(fake_pop3, receiver.url, tmp_path)
    await _session(config)
    assert fake_pop3.messages == []
    fake_pop3.add(make_message(2, subject="second"), uid="reused")
    _, result = await _session(config)
    assert result.reconciled == 0
    assert result.delivered == 1
    assert [r.json()["subject"] for r in receiver.requests] == ["first", "second"]
    assert len(receiver.distinct_webhook_ids()) == 2
    assert fake_pop3.messages == []


async def test_header_identity_reused_across_sessions_is_posted(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Without UIDL, a new message with the same headers and size as one already delivered
    and deleted is posted, not reconciled away."""
    server = FakePop3Server([make_message(1, body="alpha\n")], uidl=False)
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path)
        await _session(config)
        server.add(make_message(1, body="bravo\n"))
        _, result = await _session(config)
        assert result.delivered == 1
        assert [r.json()["text"] for r in receiver.requests] == ["alpha\n", "bravo\n"]
        assert len(receiver.distinct_webhook_ids()) == 2
    finally:
        await server.stop()


async def test_new_collision_keeps_the_acknowledged_message_identity(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """X was acknowledged but its session died before QUIT; a colliding Y arrives. X is
    deleted without a repost (it keeps its identity) and Y is posted."""
    server = FakePop3Server([make_message(1, body="alpha\n")], uidl=False)
    server.drop_on("QUIT")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path)
        await _session(config)
        assert len(server.messages) == 1
        server.add(make_message(1, body="bravo\n"))
        _, result = await _session(config)
        assert result.reconciled == 1
        assert result.delivered == 1
        assert [r.json()["text"] for r in receiver.requests] == ["alpha\n", "bravo\n"]
        assert server.messages == []
    finally:
        await server.stop()


async def test_headers_only_rejected_with_dead_letter_policy_is_parked(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A headers-only (oversize) payload that the receiver rejects stays parked on the
    server: there is no raw message to spool, and the session carries on."""
    fake_pop3.add(make_message(1, size=20_000))
    fake_pop3.add(make_message(2))
    receiver.decide(lambda r: Reply(422) if r.json()["subject"] == "message 1" else None)
    config = _config(
        fake_pop3,
        receiver.url,
        tmp_path,
        max_message_bytes=5_000,
        oversize_policy="headers_only",
        reject_policy="dead_letter",
    )
    _, result = await _session(config)
    assert result.committed
    assert result.rejected == 1
    assert result.dead_lettered == 0
    assert [m.uid for m in fake_pop3.messages] == ["uid-000001"]


async def test_strict_order_holds_across_sessions(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """With strict_order, a parked first message keeps the later ones back in later
    sessions too."""
    for i in range(3):
        fake_pop3.add(make_message(i))
    receiver.decide(lambda r: Reply(422) if r.json()["subject"] == "message 0" else None)
    config = _config(fake_pop3, receiver.url, tmp_path, strict_order=True)
    await _session(config)
    _, second = await _session(config)
    assert second.delivered == 0
    assert [r.json()["subject"] for r in receiver.requests] == ["message 0"]
    assert len(fake_pop3.messages) == 3


async def test_duplicate_uidl_on_an_oversize_message_does_not_stall_the_mailbox(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Telling apart two messages with one UIDL never RETRieves one over the size limit."""
    fake_pop3.add(make_message(1, size=20_000), uid="dup")
    fake_pop3.add(make_message(2), uid="dup")
    fake_pop3.add(make_message(3), uid="other")
    _, result = await _session(_config(fake_pop3, receiver.url, tmp_path, max_message_bytes=5_000))
    assert result.committed
    assert result.delivered == 2
    assert result.oversize == 1
    assert len(fake_pop3.messages) == 1
