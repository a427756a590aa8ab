"""Delete-after-ack end to end: the real poller, ledger and webhook client against Dovecot."""

from __future__ import annotations

import asyncio
import email
import email.message
import json
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
from standardwebhooks.webhooks import Webhook

from bridge.app import App
from bridge.config import Config
from bridge.webhook import BreakerState, webhook_id
from tests.dovecot import Dovecot, Pop3User
from tests.fakes.cutproxy import CutProxy
from tests.integration.kit import SECRET, config_dict, make_message
from tests.receiver import RecordedRequest, Reply, WebhookReceiver

pytestmark = pytest.mark.dovecot


def _app(config: dict[str, Any]) -> App:
    return App(Config.from_dict(config))


async def _once(config: dict[str, Any]) -> tuple[bool, App]:
    app = _app(config)
    try:
        ok = await app.once()
    finally:
        await app.close()
    return ok, app


def _subjects(requests: list[RecordedRequest]) -> list[str]:
    return [r.json()["subject"] for r in requests]


async def test_happy_path_posts_signed_exact_payloads_then_deletes(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Every message is POSTed once, signed, with its content intact, and then deleted."""
    raws = [make_message(i, body=f"Line one of {i}\n.dot line\n.\nlast\n") for i in range(5)]
    pop3_user.deliver_many(raws)
    ok, _ = await _once(config_dict(dovecot, pop3_user, receiver.url, tmp_path))
    assert ok
    assert pop3_user.count() == 0
    # Deliveries run concurrently (delivery_concurrency 4), so arrival order may differ.
    assert sorted(_subjects(receiver.requests)) == [f"message {i}" for i in range(5)]
    verifier = Webhook(SECRET)
    for request in receiver.requests:
        payload = verifier.verify(request.body, dict(request.headers))
        i = int(payload["subject"].split()[1])
        assert payload["text"] == f"Line one of {i}\n.dot line\n.\nlast\n"
        assert payload["mailbox"] == "inbox"
        assert request.headers["webhook-id"] == payload["webhook_id"]
        assert payload["webhook_id"] == webhook_id("inbox", payload["uidl"])
        assert payload["size"] == len(raws[i].replace(b"\n", b"\r\n"))


async def test_500_and_400_stay_on_server_and_rejected_are_not_refetched(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """5xx (transient) and 4xx (rejected) messages stay; the rest are deleted; parked is skipped."""
    pop3_user.deliver_many(
        make_message(i, subject=s)
        for i, s in enumerate(["ok-a", "fail-500", "ok-b", "fail-400", "ok-c"])
    )

    def decide(request: RecordedRequest) -> Reply | None:
        subject = request.json()["subject"]
        if subject == "fail-500":
            return Reply(500)
        if subject == "fail-400":
            return Reply(400, body=b"schema mismatch")
        return None

    receiver.decide(decide)
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path)
    ok, _ = await _once(config)
    assert not ok
    left = sorted(email.message_from_bytes(m)["Subject"] for m in pop3_user.messages())
    assert left == ["fail-400", "fail-500"]
    posts_400 = _subjects(receiver.requests).count("fail-400")
    assert posts_400 == 1  # a rejection is not retried within the call

    receiver.clear()
    receiver.decide(None)  # everything is accepted now
    await _once(config)
    # The parked (rejected) message is not fetched again before its next attempt time;
    # the transient one is due again at once and is now delivered and deleted.
    assert _subjects(receiver.requests) == ["fail-500"]
    assert [email.message_from_bytes(m)["Subject"] for m in pop3_user.messages()] == ["fail-400"]


async def test_receiver_down_deletes_nothing_and_opens_breaker(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """With the receiver down nothing is deleted and the target's circuit breaker opens."""
    pop3_user.deliver_many(make_message(i) for i in range(12))
    await receiver.stop()
    config = config_dict(
        dovecot,
        pop3_user,
        receiver.url,
        tmp_path,
        webhooks={
            "main": {
                "url": receiver.url,
                "secret": SECRET,
                "timeout": 2,
                "max_attempts": 1,
                "breaker_failures": 3,
                "breaker_cooldown": 0.5,
            }
        },
    )
    app = _app(config)
    try:
        ok = await app.once()
        assert not ok
        # the fetched messages waited for one trial request, which failed too
        assert app.webhooks.breaker_state("main") is BreakerState.OPEN
        result = app.mailboxes["inbox"].last_result
        assert result is not None
        # Once the breaker opened the bridge stopped downloading mail it could not deliver.
        assert result.fetched < 12
        assert result.skipped > 0
        metrics = app.metrics.render().decode()
        assert 'bridge_webhook_circuit_state{target="main"} 2.0' in metrics
    finally:
        await app.close()
    assert pop3_user.count() == 12


async def test_drop_after_dele_before_quit_then_next_session_deletes_without_posting(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A session cut before QUIT deletes nothing; the next one deletes without reposting."""
    pop3_user.deliver_many(make_message(i) for i in range(4))
    proxy = await CutProxy(dovecot.host, dovecot.port, cut_before=b"QUIT").start()
    try:
        cut = config_dict(dovecot, pop3_user, receiver.url, tmp_path, port=proxy.port, tls="none")
        ok, _ = await _once(cut)
        assert not ok
        assert proxy.cuts == 1
    finally:
        await proxy.stop()
    assert pop3_user.count() == 4  # DELE without QUIT deleted nothing
    assert len(receiver.requests) == 4

    ok, _ = await _once(config_dict(dovecot, pop3_user, receiver.url, tmp_path))
    assert ok
    assert pop3_user.count() == 0
    assert len(receiver.requests) == 4  # reconciled: deleted without posting again


async def test_two_targets_one_failing_posts_each_target_once(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A message is deleted only when every target acknowledged; an acked target is not reposted."""
    second = WebhookReceiver(path="/other", reply=503)
    await second.start()
    try:
        pop3_user.deliver_many(make_message(i) for i in range(3))
        hooks = {
            "a": {
                "url": receiver.url,
                "secret": SECRET,
                "backoff_initial": 0.01,
                "backoff_max": 0.02,
            },
            "b": {
                "url": second.url,
                "secret": SECRET,
                "max_attempts": 2,
                "backoff_initial": 0.01,
                "backoff_max": 0.02,
            },
        }
        config = config_dict(
            dovecot,
            pop3_user,
            receiver.url,
            tmp_path,
            webhooks=hooks,
            mailbox={"webhooks": ["a", "b"]},
        )
        ok, _ = await _once(config)
        assert not ok
        assert pop3_user.count() == 3
        assert len(receiver.requests) == 3

        # b recovers: a transient failure is due again at the next session.
        second.reply(200)
        ok, _ = await _once(config)
        assert ok
        assert pop3_user.count() == 0
        assert len(receiver.requests) == 3  # a acknowledged before: not posted again
        assert len(second.distinct_webhook_ids()) == 3
        assert second.distinct_webhook_ids() == receiver.distinct_webhook_ids()
    finally:
        await second.stop()


@pytest.mark.parametrize("policy", ["park", "headers_only"])
async def test_oversize_messages_follow_policy_and_do_not_block_others(
    dovecot: Dovecot,
    pop3_user: Pop3User,
    receiver: WebhookReceiver,
    tmp_path: Path,
    policy: str,
) -> None:
    """Messages over max_message_bytes are parked or sent headers-only; the rest flow."""
    pop3_user.deliver_many([make_message(0), make_message(1, size=20_000), make_message(2)])
    config = config_dict(
        dovecot,
        pop3_user,
        receiver.url,
        tmp_path,
        mailbox={"max_message_bytes": 5_000, "oversize_policy": policy},
    )
    await _once(config)
    subjects = _subjects(receiver.requests)
    if policy == "park":
        assert subjects == ["message 0", "message 2"]
        assert [email.message_from_bytes(m)["Subject"] for m in pop3_user.messages()] == [
            "message 1"
        ]
    else:
        assert sorted(subjects) == ["message 0", "message 1", "message 2"]
        big = next(r.json() for r in receiver.requests if r.json()["subject"] == "message 1")
        assert big["text"] in (None, "")
        assert big["size"] > 20_000
        assert (big["body_omitted"], big["body_omitted_reason"]) == (True, "size")
        assert any("max_message_bytes" in json.dumps(d) for d in big["defects"])
        assert pop3_user.count() == 0


async def test_restart_in_the_middle_continues_without_duplicates(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A session budget ends a session mid-mailbox; a new process continues where it left off."""
    pop3_user.deliver_many(make_message(i) for i in range(7))
    config = config_dict(
        dovecot, pop3_user, receiver.url, tmp_path, mailbox={"session_max_messages": 3}
    )
    app = _app(config)
    try:
        result = await app.session(app.mailboxes["inbox"], stop=asyncio.Event())
    finally:
        await app.close()
    assert result is not None
    assert result.committed
    assert result.more_pending
    assert pop3_user.count() == 4
    ok, _ = await _once(config)  # a fresh App: as after a restart
    assert ok
    assert pop3_user.count() == 0
    assert len(receiver.requests) == 7
    assert len(receiver.distinct_webhook_ids()) == 7


async def test_target_down_then_back_logs_once_each_and_delivers_fetched_mail_in_session(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A receiver that goes down and comes back: one warning when its breaker opens, one when
    it closes, and the messages already fetched are delivered in the same session, each
    fetched once and acknowledged once."""
    pop3_user.deliver_many(make_message(i) for i in range(6))
    await receiver.stop()
    hook = {
        "url": receiver.url,
        "secret": SECRET,
        "timeout": 2,
        "max_attempts": 1,
        "breaker_failures": 2,
        "breaker_cooldown": 1,
    }
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path, webhooks={"main": hook})
    app = _app(config)

    async def back_when_open() -> None:
        for _ in range(3000):  # at most 30 s
            if app.webhooks.breaker_state("main") is BreakerState.OPEN:
                break
            await asyncio.sleep(0.01)
        await receiver.start()

    try:
        with structlog.testing.capture_logs() as logs:
            reviver = asyncio.create_task(back_when_open())
            ok = await asyncio.wait_for(app.once(), 60)
            await reviver
        assert ok
        result = app.mailboxes["inbox"].last_result
        assert result is not None
        assert (result.fetched, result.delivered, result.deleted) == (6, 6, 6)
        sessions = [e for e in logs if e["event"] in ("session", "session_failed")]
        assert len(sessions) == 1  # all in the one session
    finally:
        await app.close()
    assert pop3_user.count() == 0
    assert len(receiver.distinct_webhook_ids()) == 6
    assert len(receiver.requests) == 6  # no duplicates
    changes = [
        (e["event"], e["log_level"]) for e in logs if e["event"].startswith("webhook_target_")
    ]
    assert changes == [
        ("webhook_target_down", "warning"),
        ("webhook_target_recovered", "warning"),
    ]
