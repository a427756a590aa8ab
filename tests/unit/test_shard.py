"""``--shard INDEX/COUNT``: rendezvous hashing, stable under resizing, and its metrics."""

from __future__ import annotations

from pathlib import Path

from bridge.app import App, select_shard, shard_of
from bridge.config import Config
from tests.integration.kit import SECRET

NAMES = [f"customer-{i}@example.org" for i in range(10_000)]


def test_adding_a_replica_moves_about_one_in_n_plus_one_mailboxes() -> None:
    """Going from N to N+1 replicas moves ~1/(N+1) of the mailboxes, all of them to the new
    replica (hash-modulo moved N/(N+1)); measured over 10,000 names for N = 1..7."""
    for count in range(1, 8):
        before = [shard_of(name, count) for name in NAMES]
        after = [shard_of(name, count + 1) for name in NAMES]
        moved = [(b, a) for b, a in zip(before, after, strict=True) if a != b]
        share = len(moved) / len(NAMES)
        assert abs(share - 1 / (count + 1)) < 0.02, (count, share)
        assert {a for _, a in moved} == {count}  # only ever to the new replica


def test_removing_the_last_replica_moves_only_its_mailboxes() -> None:
    """Scaling down from 4 to 3 moves exactly the mailboxes replica 3 owned."""
    for name in NAMES[:2000]:
        if shard_of(name, 4) != 3:
            assert shard_of(name, 3) == shard_of(name, 4)


def test_shards_are_balanced_disjoint_and_cover_every_mailbox() -> None:
    """Each of 5 replicas owns 2,000 +- 5 % of 10,000 mailboxes; together exactly all."""
    owners = [shard_of(name, 5) for name in NAMES]
    for index in range(5):
        assert 1900 <= owners.count(index) <= 2100
    assert shard_of("support", 1) == 0
    assert shard_of("support", 3) == shard_of("support", 3)  # deterministic


def _config(tmp_path: Path, count: int) -> Config:
    return Config.from_dict(
        {
            "data_dir": str(tmp_path),
            "webhooks": {"main": {"url": "http://127.0.0.1:9/h", "secret": SECRET}},
            "mailboxes": [
                {
                    "name": f"box{i}",
                    "host": "127.0.0.1",
                    "tls": "none",
                    "allow_insecure_auth": True,
                    "username": "u",
                    "password": "p",
                    "webhooks": ["main"],
                }
                for i in range(count)
            ],
        },
        env={},
    )


async def test_each_replica_exports_how_many_mailboxes_it_owns(tmp_path: Path) -> None:
    """bridge_mailboxes_owned of the replicas sums to bridge_mailboxes_configured, which
    every replica exports: the alert for an unpolled mailbox compares the two."""
    config = _config(tmp_path, 40)
    owned = 0.0
    for index in range(3):
        app = App(config, shard=(index, 3))
        try:
            value = app.metrics.registry.get_sample_value("bridge_mailboxes_owned")
            assert value == len(app.mailboxes) == len(select_shard(config.mailboxes, (index, 3)))
            assert app.metrics.registry.get_sample_value("bridge_mailboxes_configured") == 40
            owned += value
        finally:
            await app.close()
    assert owned == 40
