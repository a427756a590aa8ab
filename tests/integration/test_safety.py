"""Safety under a second process, hostile and slow servers (issue: never delete what was not
posted, never post twice, never wedge). Each test reproduces a case that once lost or doubled
mail."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.app import App
from bridge.config import Config
from tests.dovecot import Dovecot, Pop3User
from tests.fakes.cutproxy import CutProxy
from tests.integration.kit import config_dict, make_message, write_config
from tests.integration.test_cli import _run_service, _stop, popbridge
from tests.receiver import Reply, WebhookReceiver

pytestmark = pytest.mark.dovecot


async def test_once_beside_run_on_one_data_dir_exits_5_and_posts_nothing(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """`once` while `run` holds data_dir: exit 5 at once, naming data_dir and run's pid;
    every message is posted exactly once (once: 139 of 300 posted twice before the lock)."""
    data = tmp_path / "data"
    config = config_dict(dovecot, pop3_user, receiver.url, data)
    proc, _ = await _run_service(config, tmp_path)
    try:
        pop3_user.deliver_many(make_message(i) for i in range(30))
        cfg = write_config(tmp_path / "once.yaml", config)
        code, _, err = await popbridge("once", "-c", str(cfg), within=20)
        assert code == 5, err
        assert str(data) in err
        assert f"pid {proc.pid}" in err
        assert len(err.strip().splitlines()) == 1
        second, _, err2 = await popbridge("run", "-c", str(cfg), within=20)
        assert second == 5, err2
        await receiver.wait_for(30, within=30)
    finally:
        assert await _stop(proc) == 0
    assert len(receiver.requests) == 30
    assert len(receiver.distinct_webhook_ids()) == 30
    assert pop3_user.count() == 0
    # The lock went with the process: a new `once` runs.
    code, _, err = await popbridge("once", "-c", str(cfg))
    assert code == 0, err


async def test_ledger_and_data_dir_are_private(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """data_dir is created 0700 and the ledger (and its WAL) 0600."""
    pop3_user.deliver(make_message(1))
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "c.yaml", config_dict(dovecot, pop3_user, receiver.url, data))
    code, _, err = await popbridge("once", "-c", str(cfg))
    assert code == 0, err
    assert os.stat(data).st_mode & 0o777 == 0o700
    for name in os.listdir(data):
        if name.startswith("ledger.sqlite3"):
            assert os.stat(data / name).st_mode & 0o777 == 0o600, name


async def test_check_creates_nothing_on_disk(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """`check` (documented: changes nothing) neither creates data_dir nor the ledger."""
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "c.yaml", config_dict(dovecot, pop3_user, receiver.url, data))
    code, _, err = await popbridge("check", "-c", str(cfg))
    assert code == 0, err
    assert not data.exists()


def _rebuild_uid_list(user: Pop3User) -> None:
    """What a restore, a migration or a lost index does: Dovecot numbers the mail anew."""
    for path in user.maildir.iterdir():
        if path.name.startswith("dovecot"):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


async def test_rebuilt_uid_list_after_a_lost_quit_reply_loses_nothing(
    dovecot_u: Dovecot, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Real Dovecot, %u UIDLs. Session 1 delivers X; QUIT's reply is lost on the way back
    (the server committed). The UID list is rebuilt and Y arrives with X's UIDL "1".
    Session 2 must post Y (5 of 5 were deleted unposted before), under a new webhook-id."""
    user = dovecot_u.new_user()
    user.deliver(make_message(1, body="alpha, the first message\n"))
    proxy = await CutProxy(dovecot_u.host, dovecot_u.port, swallow_reply_to=b"QUIT").start()
    try:
        config = config_dict(
            dovecot_u, user, receiver.url, tmp_path / "data", port=proxy.port, tls="none"
        )
        app = App(Config.from_dict(config, env={}))
        try:
            first = await app.session(app.mailboxes["inbox"], asyncio.Event())
        finally:
            await app.close()
        assert first is not None
        assert not first.committed
        assert proxy.cuts == 1
    finally:
        await proxy.stop()
    assert user.count() == 0  # Dovecot did commit the deletion
    _rebuild_uid_list(user)
    user.deliver(make_message(2, body="bravo, a different message\n"))
    config = config_dict(dovecot_u, user, receiver.url, tmp_path / "data")
    app = App(Config.from_dict(config, env={}))
    try:
        second = await app.session(app.mailboxes["inbox"], asyncio.Event())
    finally:
        await app.close()
    assert second is not None
    assert second.committed
    texts = [r.json()["text"] for r in receiver.requests]
    assert texts == ["alpha, the first message\n", "bravo, a different message\n"]
    assert receiver.requests[0].json()["uidl"] == "1"
    assert len(receiver.distinct_webhook_ids()) == 2
    assert user.count() == 0


async def test_once_stops_gracefully_on_sigterm(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """SIGTERM during `once`: in-flight deliveries finish, QUIT commits what was acknowledged,
    exit within the grace; nothing is lost and a second `once` posts only the rest."""
    total = 200
    pop3_user.deliver_many(make_message(i) for i in range(total))
    receiver.reply(Reply(200, delay=0.05))
    config = config_dict(
        dovecot, pop3_user, receiver.url, tmp_path / "data", mailbox={"session_max_messages": 500}
    )
    config["shutdown_grace"] = 10
    cfg = write_config(tmp_path / "c.yaml", config)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "once", "-c", str(cfg),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await receiver.wait_for(10, within=30)
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(proc.wait(), 20)
    assert code != 0  # messages were left on the server: not a clean "all delivered"
    acked = len(receiver.distinct_webhook_ids())
    assert acked < total, "the drain finished before SIGTERM; slow the receiver"
    assert pop3_user.count() == total - acked  # QUIT committed every acknowledged message
    receiver.reply(200)
    code, _, err = await popbridge("once", "-c", str(cfg))
    assert code == 0, err
    assert len(receiver.requests) == total
    assert pop3_user.count() == 0


async def test_corrupt_ledger_and_busy_port_are_one_line_and_exit_2(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Startup problems are one line that says what and what to do, exit 2, no traceback."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "ledger.sqlite3").write_bytes(b"this is not a database" * 100)
    config = config_dict(dovecot, pop3_user, receiver.url, data)
    cfg = write_config(tmp_path / "c.yaml", config)
    code, _, err = await popbridge("once", "-c", str(cfg))
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert "ledger" in err

    (data / "ledger.sqlite3").unlink()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config["http"] = {"listen": f"127.0.0.1:{busy.getsockname()[1]}"}
        cfg = write_config(tmp_path / "c.yaml", config)
        code, _, err = await popbridge("run", "-c", str(cfg))
    assert code == 2, err
    assert "Traceback" not in err
    assert "http.listen" in err


def _mount_tmpfs(where: Path, options: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)


def _umount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], check=True)


async def test_full_disk_stops_fetching_and_loses_nothing(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """data_dir on a full file system: nothing is fetched or posted, the failure is one line
    per session and counted; once there is room again everything is delivered exactly once."""
    mount = tmp_path / "small"
    mount.mkdir()
    _mount_tmpfs(mount, "size=1m")
    try:
        data = mount / "data"
        config = config_dict(dovecot, pop3_user, receiver.url, data)
        cfg = write_config(tmp_path / "c.yaml", config)
        pop3_user.deliver(make_message(0))
        code, _, err = await popbridge("once", "-c", str(cfg))
        assert code == 0, err
        filler = mount / "filler"
        with filler.open("wb") as fh, contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 65536)
        pop3_user.deliver_many(make_message(i) for i in range(1, 30))
        code, _, err = await popbridge("once", "-c", str(cfg))
        assert code != 0
        assert "Traceback" not in err
        posted = len(receiver.requests)
        filler.unlink()
        code, _, err = await popbridge("once", "-c", str(cfg))
        assert code == 0, err
        assert pop3_user.count() == 0
        assert len(receiver.distinct_webhook_ids()) == 30
        # At most the messages whose acknowledgement could not be written are posted again.
        assert len(receiver.requests) - 30 <= posted - 1
    finally:
        _umount(mount)
