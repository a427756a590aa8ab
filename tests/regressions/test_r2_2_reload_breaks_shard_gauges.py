"""R2-2: after a SIGHUP reload, a sharded replica exports bridge_mailboxes_configured as the
number of mailboxes *it* owns (App.reload calls Metrics.prepare without ``configured``), and
bridge_mailboxes_owned never drops the mailboxes a reload removed. Then
``max(configured) > sum(owned)`` (PopbridgeMailboxesUnpolled) cannot fire any more: a lost
replica, or replicas that disagree on the shard count, go unnoticed - mailboxes polled by
nobody, silently.

Correct: after any reload, configured is the config's total and owned is this replica's
current share."""

from __future__ import annotations

from pathlib import Path

from bridge.app import App, select_shard
from tests.unit.test_shard import _config


async def test_reload_keeps_configured_total_and_owned_share(tmp_path: Path) -> None:
    config = _config(tmp_path, 40)
    app = App(config, shard=(0, 3))
    try:
        app.reload(config)  # SIGHUP, config unchanged
        sample = app.metrics.registry.get_sample_value
        assert sample("bridge_mailboxes_configured") == 40
        smaller = _config(tmp_path, 20)  # half the mailboxes removed
        app.reload(smaller)
        assert sample("bridge_mailboxes_configured") == 20
        assert sample("bridge_mailboxes_owned") == len(select_shard(smaller.mailboxes, (0, 3)))
    finally:
        await app.close()
