"""``popbridge once`` exit codes for cron and CI, end to end against the real Dovecot.

The table is in bridge/exitcodes.py and docs/operations.md; each row is run here as a
subprocess, and the same state must give the same code on every run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dovecot import Dovecot, Pop3User, free_port
from tests.integration.kit import config_dict, make_message, write_config
from tests.integration.test_cli import popbridge
from tests.receiver import WebhookReceiver

pytestmark = pytest.mark.dovecot


async def test_all_delivered_and_deleted_exits_0_every_time(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """0: everything delivered and deleted; an empty mailbox next time is 0 again."""
    pop3_user.deliver_many(make_message(i) for i in range(3))
    cfg = write_config(
        tmp_path / "c.yaml", config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    )
    assert (await popbridge("once", "-c", str(cfg)))[0] == 0
    assert pop3_user.count() == 0
    assert (await popbridge("once", "-c", str(cfg)))[0] == 0


async def test_a_parked_message_exits_3_on_every_run(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """3: a rejected (parked) message left on the server gives 3 on the run that parked it
    and on every later run, although later runs do not post it again."""
    pop3_user.deliver_many([make_message(1)])
    receiver.reply(422)
    cfg = write_config(
        tmp_path / "c.yaml", config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    )
    for _ in range(3):
        code, _, err = await popbridge("once", "-c", str(cfg))
        assert code == 3, err
    assert pop3_user.count() == 1
    assert len(receiver.requests) == 1  # parked: not posted again


async def test_a_transient_failure_exits_3_then_0_once_delivered(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """3 while the receiver fails for now (5xx), 0 once a later run delivered everything."""
    pop3_user.deliver_many(make_message(i) for i in range(2))
    receiver.reply(503)
    cfg = write_config(
        tmp_path / "c.yaml", config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    )
    code, _, err = await popbridge("once", "-c", str(cfg))
    assert code == 3, err
    assert pop3_user.count() == 2
    receiver.reply(200)
    code, _, err = await popbridge("once", "-c", str(cfg))
    assert code == 0, err
    assert pop3_user.count() == 0


async def test_a_wrong_password_exits_4(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """4: a mailbox that refuses the login; the other, healthy mailbox is still drained."""
    pop3_user.deliver_many([make_message(1)])
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    bad = dict(config["mailboxes"][0], name="wrong", password="Wrong-Password-123")
    config["mailboxes"].append(bad)
    cfg = write_config(tmp_path / "c.yaml", config)
    code, out, err = await popbridge("once", "-c", str(cfg))
    assert code == 4, err
    assert pop3_user.count() == 0  # the good mailbox (same maildrop) was drained
    assert "Wrong-Password-123" not in out + err


async def test_an_unreachable_server_exits_4_and_outranks_3(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """4 beats 3: one mailbox has a parked message, the other's server does not answer."""
    pop3_user.deliver_many([make_message(1)])
    receiver.reply(422)
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    down = dict(config["mailboxes"][0], name="down", port=free_port(), connect_timeout=2)
    config["mailboxes"].append(down)
    cfg = write_config(tmp_path / "c.yaml", config)
    code, _, err = await popbridge("once", "-c", str(cfg))
    assert code == 4, err
    config["mailboxes"].pop()
    write_config(cfg, config)
    code, _, err = await popbridge("once", "-c", str(cfg))
    assert code == 3, err


async def test_a_config_error_exits_2(tmp_path: Path) -> None:
    """2: a config file with a YAML mistake, before anything is contacted."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("mailboxes: [a, b\n")
    code, _, err = await popbridge("once", "-c", str(cfg))
    assert code == 2
    assert "line 2, column 1" in err
