"""The dead-letter store's replay support: ids, stored payloads, updates, removal, counts."""

from __future__ import annotations

import json
from pathlib import Path

from bridge.deadletter import DeadLetterStore


def test_payload_targets_and_webhook_id_are_kept_and_found_by_id_prefix(tmp_path: Path) -> None:
    """write(payload=..., extra targets) keeps what a replay needs; find() takes a prefix."""
    store = DeadLetterStore(tmp_path / "dl")
    store.write(
        "box", "u1", b"raw", "main: HTTP 400", webhook_id="msg_1", payload=b'{"a": 1}',
        extra={"targets": ["main"]},
    )  # fmt: skip
    (letter,) = store.list()
    assert len(letter.id) == 32
    assert store.find(letter.id[:6]) == [letter]
    assert store.find("zz") == []
    assert letter.payload() == b'{"a": 1}'
    assert letter.targets == ["main"]
    assert letter.webhook_id == "msg_1"


def test_update_rewrites_the_metadata_and_remove_deletes_every_file(tmp_path: Path) -> None:
    """update() changes fields durably; remove() leaves no file of the letter behind."""
    store = DeadLetterStore(tmp_path / "dl")
    store.write("box", "u1", b"raw", "first", payload=b"{}")
    (letter,) = store.list()
    store.update(letter, reason="second", replay_attempts=1)
    (again,) = store.list()
    assert again.reason == "second"
    assert json.loads(again.json_path.read_text())["replay_attempts"] == 1
    store.remove(again)
    assert store.list() == []
    assert [p.name for p in (tmp_path / "dl" / "box").iterdir()] == []


def test_replay_counts_persist_per_mailbox_and_outcome(tmp_path: Path) -> None:
    """Counts survive a new store object (another process) and add up."""
    DeadLetterStore(tmp_path / "dl").count_replays("box", "ok")
    DeadLetterStore(tmp_path / "dl").count_replays("box", "failed", 2)
    assert DeadLetterStore(tmp_path / "dl").replay_counts() == {"box": {"ok": 1, "failed": 2}}
    assert DeadLetterStore(tmp_path / "none").replay_counts() == {}


def test_a_letter_without_a_stored_payload_reads_none(tmp_path: Path) -> None:
    """Dead letters spooled before payloads were kept have none; a replay rebuilds it."""
    store = DeadLetterStore(tmp_path / "dl")
    store.write("box", "u1", b"raw", "old")
    (letter,) = store.list()
    assert letter.payload() is None
    assert letter.targets == []
