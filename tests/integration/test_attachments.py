"""A 413 never costs an attachment: end to end with the real Dovecot, a receiver that caps the
body size like n8n or Make do (here 100 KB), and real content stores (a directory, and S3 as a
moto server process).

With a store the attachments go by reference and the receiver fetches them (a file path, or
a presigned URL over HTTP) and checks their sha256 before it answers 2xx; only then is the
mail deleted. Without a store the message stays on the server, parked, and is counted.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from bridge.app import App
from bridge.attachments import DirStore
from bridge.cli import main as cli_main
from bridge.config import Config
from tests.dovecot import Dovecot, Pop3User
from tests.integration.kit import SECRET, config_dict, make_message, write_config
from tests.integration.test_cli import popbridge
from tests.receiver import ClaimChecker, Reply, WebhookReceiver
from tests.s3server import S3Bucket

pytestmark = pytest.mark.dovecot

CAP = 100_000
ATTACHMENT = os.urandom(300_000)


def with_attachment(data: bytes = ATTACHMENT, subject: str = "invoice") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Billing <billing@example.org>"
    msg["To"] = "inbox@example.org"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject}@example.org>"
    msg.set_content("The invoice is attached.\n")
    msg.add_attachment(data, maintype="application", subtype="pdf", filename="invoice.pdf")
    return bytes(msg)


def metric(app: App, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(app.metrics.render().decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise KeyError(f"{name}{labels}")


async def run_once(config: dict[str, Any]) -> tuple[bool, App]:
    app = App(Config.from_dict(config, env={}))
    try:
        ok = await app.once()
    finally:
        await app.close()
    return ok, app


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read(path: str | Path) -> bytes:
    """A file's bytes (a helper, so async tests do not call pathlib directly)."""
    return Path(path).read_bytes()


def exists(path: str | Path) -> bool:
    return Path(path).exists()


def entries(path: Path) -> list[Path]:
    return list(path.iterdir())


@pytest.mark.parametrize("reject_policy", ["park", "dead_letter"])
async def test_413_without_a_store_parks_the_message_on_the_server(
    dovecot: Dovecot,
    pop3_user: Pop3User,
    receiver: WebhookReceiver,
    tmp_path: Path,
    reject_policy: str,
) -> None:
    """No store: a 413 leaves the message on the server (never resent without its attachment,
    never dead-lettered), parks it, counts it; other mail still goes through."""
    pop3_user.deliver(with_attachment())
    pop3_user.deliver(make_message(1))
    receiver.decide(ClaimChecker(max_body=CAP))
    config = config_dict(
        dovecot, pop3_user, receiver.url, tmp_path, mailbox={"reject_policy": reject_policy}
    )
    ok, app = await run_once(config)
    assert not ok
    assert [m for m in pop3_user.messages() if b"invoice" in m] == pop3_user.messages()
    assert pop3_user.count() == 1
    big = [r for r in receiver.requests if r.json()["subject"] == "invoice"]
    assert [r.answered for r in big] == [413]  # no second request without the attachment
    assert metric(app, "bridge_webhook_too_large_total", target="main", action="parked") == 1
    assert metric(app, "bridge_parked_messages") == 1  # summed over mailboxes (essential)
    assert metric(app, "bridge_messages_dead_lettered_total") == 0
    assert not (tmp_path / "dead-letters").exists()

    receiver.clear()
    ok, _ = await run_once(config)  # parked: not fetched again before its next attempt time
    assert receiver.requests == []
    assert pop3_user.count() == 1


async def test_413_with_a_dir_store_sends_the_attachment_by_reference(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Dir store: after the 413 the payload refers to a durably written file whose bytes the
    receiver reads and checks against sha256 before its 2xx; then the mail is deleted."""
    pop3_user.deliver(with_attachment())
    checker = ClaimChecker(max_body=CAP)
    receiver.decide(checker)
    store = tmp_path / "attachments"
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    config["attachments"] = {"store": "dir", "path": str(store)}
    ok, app = await run_once(config)
    assert ok, checker.problems
    assert pop3_user.count() == 0
    assert [r.answered for r in receiver.requests] == [413, 200]
    (attachment,) = receiver.requests[1].json()["attachments"]
    assert attachment["content"] is None
    assert (attachment["omitted"], attachment["omitted_reason"]) == (True, "reference")
    assert (attachment["size"], attachment["sha256"]) == (len(ATTACHMENT), sha(ATTACHMENT))
    assert attachment["content_ref"] == str(store / sha(ATTACHMENT)[:2] / sha(ATTACHMENT))
    assert read(attachment["content_ref"]) == ATTACHMENT
    assert checker.fetched == {sha(ATTACHMENT): ATTACHMENT}
    assert metric(app, "bridge_webhook_too_large_total", target="main", action="reference") == 1
    assert metric(app, "bridge_attachments_stored_total") == 1
    assert metric(app, "bridge_attachments_stored_bytes_total") == len(ATTACHMENT)


async def test_413_with_an_s3_store_sends_a_presigned_url_the_receiver_fetches(
    dovecot: Dovecot,
    pop3_user: Pop3User,
    receiver: WebhookReceiver,
    tmp_path: Path,
    s3_bucket: S3Bucket,
) -> None:
    """S3 store (moto server): the receiver GETs the presigned URL, the bytes hash to the
    payload's sha256, it answers 2xx, and only then is the mail deleted."""
    pop3_user.deliver(with_attachment())
    checker = ClaimChecker(max_body=CAP)
    receiver.decide(checker)
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path)
    config["attachments"] = s3_bucket.config(prefix="mail/", url_expiry=3600)
    ok, _ = await run_once(config)
    assert ok, checker.problems
    assert pop3_user.count() == 0
    (attachment,) = receiver.requests[-1].json()["attachments"]
    assert attachment["content_ref"].startswith(f"{s3_bucket.endpoint_url}/{s3_bucket.name}/")
    assert "X-Amz-Signature=" in attachment["content_ref"]
    assert checker.fetched == {sha(ATTACHMENT): ATTACHMENT}
    assert s3_bucket.keys() == [f"mail/{sha(ATTACHMENT)}"]
    assert s3_bucket.get(f"mail/{sha(ATTACHMENT)}") == ATTACHMENT


async def test_mail_is_deleted_only_after_a_2xx_for_the_reference_payload(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """The reference payload failing (503) keeps the mail; the object is already stored; the
    next session's 2xx deletes it."""
    pop3_user.deliver(with_attachment())
    checker = ClaimChecker(max_body=CAP)
    receiver.decide(lambda r: Reply(503) if len(r.body) <= CAP else Reply(413))
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path)
    config["attachments"] = {"store": "dir"}
    ok, _ = await run_once(config)
    assert not ok
    assert pop3_user.count() == 1
    stored = tmp_path / "attachments" / sha(ATTACHMENT)[:2] / sha(ATTACHMENT)
    assert stored.read_bytes() == ATTACHMENT  # written before the POST that referred to it

    receiver.decide(checker)
    ok, _ = await run_once(config)
    assert ok, checker.problems
    assert pop3_user.count() == 0
    assert checker.fetched == {sha(ATTACHMENT): ATTACHMENT}


async def test_max_attachment_bytes_with_a_store_sends_by_reference_before_any_post(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """With a store, attachments over max_attachment_bytes are stored up front: one POST, no
    413, the content fetched by reference."""
    pop3_user.deliver(with_attachment())
    checker = ClaimChecker(max_body=CAP)
    receiver.decide(checker)
    config = config_dict(
        dovecot, pop3_user, receiver.url, tmp_path, mailbox={"max_attachment_bytes": 50_000}
    )
    config["attachments"] = {"store": "dir"}
    ok, _ = await run_once(config)
    assert ok, checker.problems
    assert [r.answered for r in receiver.requests] == [200]
    assert checker.fetched == {sha(ATTACHMENT): ATTACHMENT}
    assert pop3_user.count() == 0


async def test_max_payload_bytes_without_a_store_parks_without_posting(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A target's max_payload_bytes parks a larger payload up front: nothing is sent."""
    pop3_user.deliver(with_attachment())
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path)
    config["webhooks"]["main"]["max_payload_bytes"] = CAP
    ok, app = await run_once(config)
    assert not ok
    assert receiver.requests == []
    assert pop3_user.count() == 1
    assert metric(app, "bridge_webhook_too_large_total", target="main", action="parked") == 1


async def test_a_failing_store_keeps_the_message_on_the_server(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A store that cannot write: nothing refers to a missing object, the mail stays and is
    tried again; the failure is counted."""
    pop3_user.deliver(with_attachment())
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    receiver.decide(ClaimChecker(max_body=CAP))
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    config["attachments"] = {"store": "dir", "path": str(blocker / "att")}
    ok, app = await run_once(config)
    assert not ok
    assert pop3_user.count() == 1
    assert [r.answered for r in receiver.requests] == [413]
    assert metric(app, "bridge_attachment_store_errors_total") == 1


# ---------------------------------------------------------------------- retention


def age(path: Path, days: float) -> None:
    """Make an object look last written ``days`` ago."""
    when = time.time() - days * 86400
    os.utime(path, (when, when))


async def test_prune_command_removes_old_objects_from_a_dir_store(tmp_path: Path) -> None:
    """``popbridge attachments prune --older-than 30d`` deletes older objects, keeps the rest,
    prints a JSON summary and exits 0."""
    store = tmp_path / "att"
    old, new = b"old attachment", b"new attachment!"
    for data in (old, new):
        await DirStore(store).put(data, sha(data))
    age(store / sha(old)[:2] / sha(old), 40)
    config = {
        "data_dir": str(tmp_path / "data"),
        "webhooks": {"main": {"url": "http://127.0.0.1:9/", "secret": SECRET}},
        "mailboxes": [
            {"name": "inbox", "host": "127.0.0.1", "username": "u", "password": "p",
             "webhooks": ["main"]}
        ],
        "attachments": {"store": "dir", "path": str(store)},
    }  # fmt: skip
    cfg = write_config(tmp_path / "c.yaml", config)
    code, out, err = await popbridge("attachments", "prune", "-c", str(cfg), "--older-than", "30d")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary == {
        "store": "dir",
        "older_than_seconds": 30 * 86400,
        "removed": 1,
        "removed_bytes": len(old),
        "kept": 1,
        "kept_bytes": len(new),
    }
    assert not exists(store / sha(old)[:2] / sha(old))
    assert read(store / sha(new)[:2] / sha(new)) == new


def test_prune_command_refuses_a_bad_duration_or_a_config_without_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad --older-than and a config without attachments exit 2 with a clear message."""
    config = {
        "data_dir": str(tmp_path / "data"),
        "webhooks": {"main": {"url": "http://127.0.0.1:9/", "secret": SECRET}},
        "mailboxes": [
            {"name": "inbox", "host": "127.0.0.1", "username": "u", "password": "p",
             "webhooks": ["main"]}
        ],
    }  # fmt: skip
    cfg = str(write_config(tmp_path / "c.yaml", config))
    with pytest.raises(SystemExit) as exited:
        cli_main(["attachments", "prune", "-c", cfg, "--older-than", "soon"])
    assert exited.value.code == 2
    assert "s, m, h, d or w" in capsys.readouterr().err
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:  # in-process, the command configures logging: undo that for the tests after this one
        assert cli_main(["attachments", "prune", "-c", cfg, "--older-than", "1d"]) == 2
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)
    assert "no content store is configured" in capsys.readouterr().err


async def test_prune_command_lists_an_s3_store(tmp_path: Path, s3_bucket: S3Bucket) -> None:
    """The prune command reaches an S3 store from the config and keeps objects younger than
    the cut-off."""
    s3_bucket.server.client().put_object(Bucket=s3_bucket.name, Key="a/1", Body=b"12345")
    config = {
        "data_dir": str(tmp_path / "data"),
        "webhooks": {"main": {"url": "http://127.0.0.1:9/", "secret": SECRET}},
        "mailboxes": [
            {"name": "inbox", "host": "127.0.0.1", "username": "u", "password": "p",
             "webhooks": ["main"]}
        ],
        "attachments": s3_bucket.config(prefix="a/"),
    }  # fmt: skip
    cfg = write_config(tmp_path / "c.yaml", config)
    code, out, err = await popbridge("attachments", "prune", "-c", str(cfg), "--older-than", "1d")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert (summary["store"], summary["removed"], summary["kept"]) == ("s3", 0, 1)
    assert summary["kept_bytes"] == 5
    assert s3_bucket.keys() == ["a/1"]


async def test_the_service_prunes_by_retention_and_counts_it(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """With attachments.retention the running service prunes old objects and counts them."""
    store = tmp_path / "att"
    old = b"stale attachment"
    await DirStore(store).put(old, sha(old))
    age(store / sha(old)[:2] / sha(old), 10)
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    config["attachments"] = {"store": "dir", "path": str(store), "retention": "7d"}
    app = App(Config.from_dict(config, env={}))
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        for _ in range(400):  # the first prune runs as the service starts
            if not exists(store / sha(old)[:2] / sha(old)):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the service did not prune the old object within 20 s")
    finally:
        stop.set()
        await task
        await app.close()
    assert metric(app, "bridge_attachments_pruned_total") == 1
    assert metric(app, "bridge_attachments_pruned_bytes_total") == len(old)
