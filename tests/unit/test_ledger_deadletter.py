"""The dead-letter store: byte-exact, atomic, fsynced before write() returns."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from bridge.deadletter import DeadLetterStore

RAW = (
    b"From: a@example.org\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\n"
    b"binary \x00\xff\xfe line\r\n.\r\n..dot\r\nno final newline"
)


def test_write_is_byte_exact_with_reason_metadata(tmp_path: Path) -> None:
    """The .eml holds the raw bytes unchanged; the .json says why, with size and sha256."""
    store = DeadLetterStore(tmp_path / "dead")
    eml = store.write("support", "0001abc", RAW, "crm: HTTP 422", webhook_id="msg_x", now=0.0)
    assert eml.read_bytes() == RAW
    meta = json.loads(eml.with_suffix(".json").read_text())
    assert meta["mailbox"] == "support"
    assert meta["uidl"] == "0001abc"
    assert meta["reason"] == "crm: HTTP 422"
    assert meta["webhook_id"] == "msg_x"
    assert meta["size"] == len(RAW)
    assert meta["spooled_at_iso"] == "1970-01-01T00:00:00Z"
    assert len(meta["sha256"]) == 64
    assert stat.S_IMODE(eml.stat().st_mode) == 0o600
    assert stat.S_IMODE(eml.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in eml.parent.iterdir()) == sorted([eml.name, eml.stem + ".json"])


def test_files_and_directories_are_fsynced_before_return(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """write() fsyncs the message, then its metadata, then the directory holding them."""
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    store = DeadLetterStore(tmp_path / "dead")
    eml = store.write("support", "u1", RAW, "rejected")
    folder = str(eml.parent)
    assert synced[-3].endswith(".eml." + str(os.getpid()) + ".tmp")  # before rename
    assert synced[-2].endswith(".json." + str(os.getpid()) + ".tmp")
    assert synced[-1] == folder
    # the new directories were made durable in their parents
    assert str(tmp_path) in synced
    assert str(tmp_path / "dead") in synced


def test_same_message_twice_replaces_not_duplicates(tmp_path: Path) -> None:
    """Spooling one message again (crash before QUIT) keeps a single copy with the new reason."""
    store = DeadLetterStore(tmp_path)
    first = store.write("support", "u1", RAW, "first")
    second = store.write("support", "u1", RAW + b"!", "second")
    assert first == second
    (letter,) = store.list()
    assert (letter.reason, letter.read()) == ("second", RAW + b"!")


def test_list_get_and_read(tmp_path: Path) -> None:
    """list() returns every letter oldest first, filtered by mailbox; get() finds one."""
    store = DeadLetterStore(tmp_path)
    assert store.list() == []
    store.write("support", "u2", b"two", "r2", now=200.0)
    store.write("support", "u1", b"one", "r1", now=100.0)
    store.write("sales", "u1", b"sales", "r3", now=150.0)
    assert [(d.mailbox, d.uidl) for d in store.list()] == [
        ("support", "u1"),
        ("sales", "u1"),
        ("support", "u2"),
    ]
    assert [d.read() for d in store.list("support")] == [b"one", b"two"]
    found = store.get("sales", "u1")
    assert found is not None
    assert found.read() == b"sales"
    assert store.get("sales", "u9") is None


def test_unsafe_mailbox_names_get_a_hashed_folder(tmp_path: Path) -> None:
    """A mailbox name that is not a safe file name cannot escape the store directory."""
    store = DeadLetterStore(tmp_path / "dead")
    eml = store.write("../../etc", "a/b", b"x", "r")
    assert eml.parent.parent == tmp_path / "dead"
    assert eml.parent.name.startswith("mailbox-")
    assert store.get("../../etc", "a/b") is not None
    assert store.list()[0].mailbox == "../../etc"


def test_unreadable_metadata_is_skipped_by_list(tmp_path: Path) -> None:
    """A corrupt .json does not break listing the others."""
    store = DeadLetterStore(tmp_path)
    store.write("support", "u1", b"ok", "r")
    (tmp_path / "support" / "junk.json").write_text("{not json")
    (tmp_path / "support" / "other.json").write_text("[1, 2]")
    assert [d.uidl for d in store.list()] == ["u1"]


def test_write_failure_raises_and_leaves_no_temp_file(tmp_path: Path) -> None:
    """When the disk refuses, write() raises OSError (so the caller must not delete)."""
    store = DeadLetterStore(tmp_path / "dead")
    store.write("support", "u0", b"x", "r")
    folder = tmp_path / "dead" / "support"
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):  # root ignores permissions: make a name collide instead
            folder.chmod(0o700)
            target = store.write("support", "u1", b"x", "r")
            target.unlink()
            target.mkdir()  # os.replace onto a directory fails
        with pytest.raises(OSError):  # noqa: PT011 - any OS refusal will do
            store.write("support", "u1", b"y", "r")
    finally:
        folder.chmod(0o700)
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
