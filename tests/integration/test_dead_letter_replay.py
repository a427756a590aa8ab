"""``popbridge dead-letters show / replay`` end to end: real Dovecot, real receiver, real CLI.

Messages are spooled by ``popbridge once`` with ``reject_policy: dead_letter`` while the
receiver refuses them, then shown and replayed from the command line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from tests.dovecot import Dovecot, Pop3User
from tests.integration.kit import SECRET, config_dict, make_message, write_config
from tests.integration.test_cli import popbridge
from tests.integration.test_reload import Service
from tests.receiver import Reply, WebhookReceiver

pytestmark = pytest.mark.dovecot


async def _spool(
    dovecot: Dovecot, user: Pop3User, receiver: WebhookReceiver, tmp_path: Path, count: int = 2
) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    """Spool ``count`` refused messages; return the config path, config and the list."""
    user.deliver_many(make_message(i) for i in range(count))
    receiver.reply(Reply(422, body=b"schema mismatch"))
    config = config_dict(dovecot, user, receiver.url, tmp_path / "data")
    config["mailboxes"][0]["reject_policy"] = "dead_letter"
    config["webhooks"]["other"] = dict(config["webhooks"]["main"])
    path = write_config(tmp_path / "c.yaml", config)
    code, _, err = await popbridge("once", "-c", str(path))
    assert code in (0, 3), err
    assert user.count() == 0  # spooled, then deleted from the server
    code, out, err = await popbridge("dead-letters", "-c", str(path))
    assert code == 0, err
    letters = [json.loads(line) for line in out.splitlines()]
    assert len(letters) == count
    return path, config, letters


async def test_show_prints_why_it_failed_and_the_stored_payload(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """``show ID`` (or a prefix) gives the reason, the targets and the payload as posted."""
    path, _, letters = await _spool(dovecot, pop3_user, receiver, tmp_path, count=1)
    original = receiver.requests[0]
    code, out, err = await popbridge("dead-letters", "show", letters[0]["id"][:8], "-c", str(path))
    assert code == 0, err
    shown = json.loads(out)
    assert shown["reason"] == "main: HTTP 422: schema mismatch"
    assert shown["targets"] == ["main"]
    assert shown["webhook_id"] == original.webhook_id
    assert shown["payload"] == original.json()
    code, _, err = await popbridge("dead-letters", "show", "ffffffff", "-c", str(path))
    assert code == 1
    assert "no dead letter with id 'ffffffff'" in err


async def test_replay_posts_the_original_webhook_id_with_a_fresh_signature_and_removes_it(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A dry run posts and changes nothing; a replay to a now-willing receiver posts the same
    body with the same webhook-id, correctly signed, and removes the dead letter."""
    path, _, letters = await _spool(dovecot, pop3_user, receiver, tmp_path)
    before = len(receiver.requests)
    code, out, err = await popbridge(
        "dead-letters", "replay", "--all", "--dry-run", "-c", str(path)
    )
    assert code == 0, err
    assert [json.loads(line)["outcome"] for line in out.splitlines()] == ["dry_run"] * 2
    assert len(receiver.requests) == before

    receiver.reply(200)
    first = letters[0]
    code, out, err = await popbridge("dead-letters", "replay", first["id"], "-c", str(path))
    assert code == 0, err
    assert json.loads(out)["outcome"] == "delivered"
    replayed = receiver.requests[-1]
    original = next(r for r in receiver.requests if r.webhook_id == first["webhook_id"])
    assert replayed is not original
    assert replayed.webhook_id == first["webhook_id"]
    assert replayed.body == original.body
    assert Webhook(SECRET).verify(replayed.body, dict(replayed.headers))
    code, out, _ = await popbridge("dead-letters", "-c", str(path))
    assert [json.loads(line)["id"] for line in out.splitlines()] == [letters[1]["id"]]


async def test_replay_to_another_target(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """--target posts to the named webhook instead of the one that refused it."""
    path, config, letters = await _spool(dovecot, pop3_user, receiver, tmp_path, count=1)
    async with WebhookReceiver() as other:
        config["webhooks"]["other"]["url"] = other.url
        write_config(path, config)
        code, _, err = await popbridge(
            "dead-letters", "replay", letters[0]["id"], "--target", "other", "-c", str(path)
        )
        assert code == 0, err
        assert [r.webhook_id for r in other.requests] == [letters[0]["webhook_id"]]
    code, _, err = await popbridge(
        "dead-letters", "replay", "--all", "--target", "nope", "-c", str(path)
    )
    assert code == 2
    assert "--target 'nope' is not a webhook" in err


async def test_failed_replay_kept_and_replay_refused_while_the_service_runs_and_metrics(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A failed replay keeps the dead letter with the new reason; with ``run`` on the same
    data_dir, replay exits 5 and changes nothing; the service reports the dead letters
    waiting and the replays done before."""
    path, config, letters = await _spool(dovecot, pop3_user, receiver, tmp_path)
    # Still refused: exit 1, the dead letter stays, its reason is the new answer.
    receiver.reply(Reply(409, body=b"conflict now"))
    code, out, _ = await popbridge("dead-letters", "replay", letters[0]["id"], "-c", str(path))
    assert code == 1
    assert json.loads(out)["outcome"] == "failed"
    code, out, _ = await popbridge("dead-letters", "show", letters[0]["id"], "-c", str(path))
    shown = json.loads(out)
    assert shown["reason"] == "main: HTTP 409: conflict now"
    assert shown["replay_attempts"] == 1
    receiver.reply(200)
    code, _, _ = await popbridge("dead-letters", "replay", letters[0]["id"], "-c", str(path))
    assert code == 0
    service = Service(config, tmp_path)
    await service.start()
    try:
        requests = len(receiver.requests)
        code, _, err = await popbridge("dead-letters", "replay", "--all", "-c", str(path))
        assert code == 5, err
        assert "in use by another popbridge process" in err
        assert len(receiver.requests) == requests
        assert await service.metric("bridge_dead_letters", mailbox="inbox") == 1
        labels = {"mailbox": "inbox"}
        assert await service.metric("bridge_dead_letter_replays_total", outcome="ok", **labels) == 1
        assert (
            await service.metric("bridge_dead_letter_replays_total", outcome="failed", **labels)
            == 1
        )
    finally:
        assert await service.stop() == 0
