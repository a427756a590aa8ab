"""The delivery ledger on real SQLite files: WAL, durability, group commit, states, pruning."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.errors import LedgerError
from bridge.ledger import SCHEMA_VERSION, Ledger, RowState, park_backoff

MB = "support"
T0 = 1_700_000_000.0


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    book = Ledger(tmp_path / "data")
    yield book
    book.close()


def seed(book: Ledger, *uidls: str, targets: tuple[str, ...] = ("crm",), now: float = T0) -> None:
    book.mark_seen(MB, [(u, f"msg_{u}", 100 + i) for i, u in enumerate(uidls)], targets, now)


def other_connection_states(path: Path) -> dict[tuple[str, str], str]:
    """Read the committed states as another process would see them."""
    with sqlite3.connect(path) as conn:
        return {(u, t): s for u, t, s in conn.execute("SELECT uidl, target, state FROM deliveries")}


# ---------------------------------------------------------------------- files and modes


def test_directory_holds_a_wal_mode_database(tmp_path: Path) -> None:
    """Given a directory, the ledger is ledger.sqlite3 inside it, in WAL mode, schema versioned."""
    (tmp_path / "d").mkdir()
    with Ledger(tmp_path / "d") as book:
        assert book.path == tmp_path / "d" / "ledger.sqlite3"
        seed(book, "u1")
        assert (tmp_path / "d" / "ledger.sqlite3-wal").exists()
        with sqlite3.connect(book.path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_file_path_and_missing_parents_are_created(tmp_path: Path) -> None:
    """A file path is used as given; its missing parent directories are created."""
    path = tmp_path / "a" / "b" / "book.db"
    with Ledger(path) as book:
        assert book.path == path
    assert path.exists()


def test_unusable_path_raises_ledger_error_naming_it(tmp_path: Path) -> None:
    """A path under a regular file cannot hold a database: LedgerError names the path."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LedgerError, match=str(blocker / "ledger.sqlite3")):
        Ledger(blocker / "ledger.sqlite3")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A ledger written by a newer popbridge is not touched."""
    path = tmp_path / "l.db"
    Ledger(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(LedgerError, match="newer than this popbridge"):
        Ledger(path)


def test_closed_ledger_raises(ledger: Ledger) -> None:
    """Using a closed ledger is a LedgerError, and close() twice is harmless."""
    ledger.close()
    ledger.close()
    with pytest.raises(LedgerError, match="closed"):
        ledger.rows(MB)
    with pytest.raises(LedgerError, match="closed"):
        seed(ledger, "u1")


# ---------------------------------------------------------------------- durability


def test_ack_survives_close_and_reopen(tmp_path: Path) -> None:
    """An acknowledgement written, then the ledger closed and reopened: still acked."""
    path = tmp_path / "l.db"
    with Ledger(path) as book:
        seed(book, "u1", "u2")
        book.mark_acked(MB, "u1", "crm", T0 + 1)
    with Ledger(path) as book:
        rows = book.rows(MB)
    assert rows["u1"]["crm"].state is RowState.ACKED
    assert rows["u2"]["crm"].state is RowState.SEEN


KILL_AFTER = textwrap.dedent(
    """
    import os, signal, sys
    from bridge.ledger import Ledger
    book = Ledger(sys.argv[1])
    book.mark_seen("support", [("u1", "msg_u1", 1), ("u2", "msg_u2", 1), ("u3", "msg_u3", 1)],
                   ["crm"], 1.0)
    book.mark_acked("support", "u1", "crm", 2.0)
    book.mark_acked("support", "u3", "crm", 2.0, sync=False)
    book.mark_acked("support", "u2", "crm", 2.0, durable=False)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_durable_ack_survives_sigkill_and_deferred_one_does_not(tmp_path: Path) -> None:
    """A process killed right after mark_acked returns keeps that ack, also with sync=False
    (committed, fsync deferred); an uncommitted durable=False ack is lost (so the message is
    posted again with the same webhook-id)."""
    path = tmp_path / "l.db"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AFTER, str(path)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=False,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL
    with Ledger(path) as book:
        rows = book.rows(MB)
    assert rows["u1"]["crm"].state is RowState.ACKED
    assert rows["u3"]["crm"].state is RowState.ACKED
    assert rows["u2"]["crm"].state is RowState.SEEN


def test_unsynced_acks_share_one_fsync_of_the_wal(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sync=False acks are committed (other connections see them) without an fsync; one
    sync() then fsyncs the WAL once for all of them, and a second sync() does nothing."""
    seed(ledger, "u1", "u2", "u3")
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    for uidl in ("u1", "u2", "u3"):
        ledger.mark_acked(MB, uidl, "crm", sync=False)
    assert synced == []
    assert ledger.pending
    assert other_connection_states(ledger.path)[("u3", "crm")] == "acked"
    ledger.sync()
    assert synced == [str(ledger.path) + "-wal"]
    assert not ledger.pending
    ledger.sync()
    assert len(synced) == 1
    ledger.mark_acked(MB, "u1", "crm")  # a synced write fsyncs at once
    assert len(synced) == 2


def test_group_commit_defers_until_commit(ledger: Ledger) -> None:
    """durable=False acks are invisible to other connections until one commit makes them all
    durable together."""
    seed(ledger, "u1", "u2", "u3")
    ledger.mark_acked(MB, "u1", "crm", durable=False)
    ledger.mark_acked(MB, "u2", "crm", durable=False)
    assert ledger.pending
    assert ledger.rows(MB)["u1"]["crm"].state is RowState.ACKED  # visible to itself
    assert other_connection_states(ledger.path)[("u1", "crm")] == "seen"
    ledger.commit()
    assert not ledger.pending
    states = other_connection_states(ledger.path)
    assert (states[("u1", "crm")], states[("u2", "crm")], states[("u3", "crm")]) == (
        "acked",
        "acked",
        "seen",
    )


async def test_flush_commits_from_a_worker_thread(ledger: Ledger) -> None:
    """await flush() makes deferred acks durable."""
    seed(ledger, "u1")
    ledger.mark_acked(MB, "u1", ["crm"], durable=False)
    await ledger.flush()
    assert other_connection_states(ledger.path)[("u1", "crm")] == "acked"
    await ledger.flush()  # nothing pending: a no-op


def test_a_durable_write_commits_deferred_ones_too(ledger: Ledger) -> None:
    """Any durable write carries the pending acks with it."""
    seed(ledger, "u1", "u2")
    ledger.mark_acked(MB, "u1", "crm", durable=False)
    ledger.mark_transient(MB, "u2", "crm", "HTTP 503", T0 + 60)
    assert not ledger.pending
    assert other_connection_states(ledger.path)[("u1", "crm")] == "acked"


def test_mark_acked_many_and_batch(ledger: Ledger) -> None:
    """mark_acked_many and batch() write everything in one transaction, committed on exit."""
    seed(ledger, "u1", "u2", "u3", targets=("crm", "erp"))
    ledger.mark_acked_many(MB, [("u1", "crm", None), ("u1", "erp", None), ("u2", "crm", None)], T0)
    assert not ledger.pending
    with ledger.batch():
        ledger.mark_transient(MB, "u3", "crm", "HTTP 500", T0 + 5)
        with ledger.batch():
            ledger.mark_acked(MB, "u2", "erp")
        assert ledger.pending  # the inner exit does not commit
        assert other_connection_states(ledger.path)[("u2", "erp")] == "seen"
    assert not ledger.pending
    states = other_connection_states(ledger.path)
    assert states[("u1", "erp")] == "acked"
    assert states[("u2", "erp")] == "acked"
    assert states[("u3", "crm")] == "transient"


def test_failed_write_leaves_no_trace_and_keeps_deferred_acks(ledger: Ledger) -> None:
    """An ack naming an unknown target fails whole (no partial ack) without losing pending
    deferred acks."""
    seed(ledger, "u1", "u2")
    ledger.mark_acked(MB, "u1", "crm", durable=False)
    with pytest.raises(LedgerError, match="no ledger row for target 'nope'"):
        ledger.mark_acked(MB, "u2", ["crm", "nope"])
    assert ledger.rows(MB)["u2"]["crm"].state is RowState.SEEN
    assert ledger.pending
    ledger.commit()
    assert other_connection_states(ledger.path)[("u1", "crm")] == "acked"


async def test_thread_safe_from_to_thread(ledger: Ledger) -> None:
    """Concurrent calls through asyncio.to_thread all land."""
    uidls = [f"u{i}" for i in range(40)]
    seed(ledger, *uidls)
    await asyncio.gather(*(asyncio.to_thread(ledger.mark_acked, MB, u, "crm") for u in uidls))
    assert {r["crm"].state for r in ledger.rows(MB).values()} == {RowState.ACKED}


# ---------------------------------------------------------------------- states


def test_mark_seen_records_rows_and_keeps_existing_ones(ledger: Ledger) -> None:
    """One seen row per target with webhook id and size; seeing again changes nothing, and a
    new target gets its own row."""
    seed(ledger, "u1", targets=("crm", "erp"))
    ledger.mark_acked(MB, "u1", "crm", T0 + 1)
    ledger.mark_seen(MB, [("u1", "msg_other", 999)], ["crm", "erp", "audit"], T0 + 50)
    rows = ledger.rows(MB)["u1"]
    assert set(rows) == {"crm", "erp", "audit"}
    crm = rows["crm"]
    assert (crm.state, crm.webhook_id, crm.size, crm.first_seen_at) == (
        RowState.ACKED,
        "msg_u1",
        100,
        T0,
    )
    assert crm.done
    assert rows["audit"].first_seen_at == T0 + 50
    assert rows["erp"].state == "seen"  # StrEnum compares with its string
    assert ledger.rows_for(MB, "u1") == rows
    assert ledger.rows_for(MB, "nope") == {}
    assert ledger.rows("other-mailbox") == {}


def test_transient_counts_attempts_and_schedules(ledger: Ledger) -> None:
    """Each transient failure adds an attempt, keeps the error and the next attempt time."""
    seed(ledger, "u1")
    ledger.mark_transient(MB, "u1", "crm", "HTTP 503", T0 + 60, T0)
    ledger.mark_transient(MB, "u1", "crm", "timed out", T0 + 120, T0 + 60)
    row = ledger.rows_for(MB, "u1")["crm"]
    assert (row.state, row.attempts, row.last_error, row.next_attempt_at) == (
        RowState.TRANSIENT,
        2,
        "timed out",
        T0 + 120,
    )
    assert row.updated_at == T0 + 60
    assert not row.due(T0 + 119)
    assert row.due(T0 + 120)
    ledger.mark_acked(MB, "u1", "crm", T0 + 200)
    acked = ledger.rows_for(MB, "u1")["crm"]
    assert (acked.attempts, acked.last_error, acked.next_attempt_at) == (3, None, None)
    assert not acked.due(T0 + 10_000)


def test_parked_backoff_grows_and_caps(tmp_path: Path) -> None:
    """Without an explicit time, each parking waits twice as long as the last, up to the cap."""
    with Ledger(tmp_path / "l.db", park_base=60, park_max=400) as book:
        seed(book, "u1")
        waits = []
        now = T0
        for _ in range(5):
            when = book.mark_parked(MB, "u1", "crm", "HTTP 400: bad", None, now)
            waits.append(when - now)
            now = when
        assert waits == [60, 120, 240, 400, 400]
        row = book.rows_for(MB, "u1")["crm"]
        assert (row.state, row.attempts, row.next_attempt_at) == (RowState.PARKED, 5, now)
        assert book.mark_parked(MB, "u1", "crm", "x", T0 + 7, T0) == T0 + 7
    assert park_backoff(1) == 300
    assert park_backoff(2) == 600
    assert park_backoff(100) == 86400
    assert park_backoff(0) == 300


def test_long_errors_are_clipped(ledger: Ledger) -> None:
    """A huge error text is stored clipped, not whole."""
    seed(ledger, "u1")
    ledger.mark_transient(MB, "u1", "crm", "x" * 50_000, None)
    stored = ledger.rows_for(MB, "u1")["crm"].last_error
    assert stored is not None
    assert len(stored) == 1003


def test_dead_lettered_marks_every_target_done(ledger: Ledger) -> None:
    """After spooling, every target of the message is done; one that acknowledged stays
    acked (it got the message), the others are dead_lettered."""
    seed(ledger, "u1", targets=("crm", "erp"))
    ledger.mark_acked(MB, "u1", "crm")
    ledger.mark_parked(MB, "u1", "erp", "HTTP 422")
    ledger.mark_dead_lettered(MB, "u1", "erp: HTTP 422", T0)
    rows = ledger.rows_for(MB, "u1")
    assert rows["crm"].state is RowState.ACKED
    assert rows["erp"].state is RowState.DEAD_LETTERED
    assert all(r.done for r in rows.values())
    with pytest.raises(LedgerError, match="no ledger row"):
        ledger.mark_dead_lettered(MB, "ghost", "x")


def test_dele_sent_requires_every_target_done(ledger: Ledger) -> None:
    """mark_dele_sent refuses a message some target has not acknowledged (last safety net)."""
    seed(ledger, "u1", "u2", targets=("crm", "erp"))
    ledger.mark_acked(MB, "u1", ["crm", "erp"])
    ledger.mark_acked(MB, "u2", "crm")
    with pytest.raises(LedgerError, match="not every target acknowledged"):
        ledger.mark_dele_sent(MB, ["u1", "u2"])
    with pytest.raises(LedgerError, match="not every target acknowledged"):
        ledger.mark_dele_sent(MB, ["never-seen"])
    assert ledger.rows_for(MB, "u1")["crm"].dele_sent_at is None  # all or nothing
    ledger.mark_dele_sent(MB, ["u1"], T0 + 5)
    assert {r.dele_sent_at for r in ledger.rows_for(MB, "u1").values()} == {T0 + 5}
    ledger.mark_dele_sent(MB, [])


def test_commit_session_marks_only_deleted_messages(ledger: Ledger) -> None:
    """QUIT's +OK commits the messages whose DELE was sent; rows stay until pruned."""
    seed(ledger, "u1", "u2")
    ledger.mark_acked(MB, "u1", "crm")
    ledger.mark_acked(MB, "u2", "crm")
    ledger.mark_dele_sent(MB, ["u1"], T0 + 1)
    ledger.commit_session(MB, ["u1", "u2"], T0 + 2)
    rows = ledger.rows(MB)
    assert rows["u1"]["crm"].committed_at == T0 + 2
    assert rows["u2"]["crm"].committed_at is None
    assert rows["u1"]["crm"].state is RowState.ACKED  # still recognised if the server kept it


def test_prune_removes_vanished_uidls_of_one_mailbox(ledger: Ledger) -> None:
    """Rows whose UIDL is no longer on the server go; others and other mailboxes stay."""
    seed(ledger, "u1", "u2", "u3", targets=("crm", "erp"))
    ledger.mark_seen("sales", [("u1", "msg_s1", 1)], ["crm"], T0)
    assert ledger.prune(MB, {"u2", "extra"}) == 2
    assert set(ledger.rows(MB)) == {"u2"}
    assert set(ledger.rows("sales")) == {"u1"}
    assert ledger.prune(MB, set()) == 1
    assert ledger.rows(MB) == {}


def test_oldest_pending_and_parked_count(ledger: Ledger) -> None:
    """The oldest undelivered message's first-seen time, and the number of parked messages."""
    assert ledger.oldest_pending(MB) is None
    seed(ledger, "old", now=T0)
    seed(ledger, "mid", targets=("crm", "erp"), now=T0 + 10)
    seed(ledger, "new", now=T0 + 20)
    assert ledger.oldest_pending(MB) == T0
    ledger.mark_acked(MB, "old", "crm")
    assert ledger.oldest_pending(MB) == T0 + 10
    ledger.mark_parked(MB, "mid", "crm", "HTTP 400")
    assert ledger.oldest_pending(MB) == T0 + 10  # erp still waits for it
    ledger.mark_parked(MB, "mid", "erp", "HTTP 400")
    assert ledger.oldest_pending(MB) == T0 + 20
    assert ledger.oldest_pending(MB, include_parked=True) == T0 + 10
    ledger.mark_transient(MB, "new", "crm", "HTTP 503", None)
    assert ledger.oldest_pending(MB) == T0 + 20
    assert ledger.parked_count(MB) == 1
    assert ledger.parked_count("sales") == 0


def test_forget_targets_drops_rows_of_targets_no_longer_configured(ledger: Ledger) -> None:
    """Rows of a target removed from the config go, so they cannot hold a message back."""
    seed(ledger, "u1", targets=("crm", "erp"))
    ledger.mark_acked(MB, "u1", "crm")
    assert ledger.forget_targets(MB, ["crm"]) == 1
    assert set(ledger.rows_for(MB, "u1")) == {"crm"}
    ledger.mark_dele_sent(MB, ["u1"])  # every remaining target is done: allowed


# ---------------------------------------------------------------------- acknowledgement time


def test_acked_at_records_each_targets_acknowledgement_and_dead_letter(ledger: Ledger) -> None:
    """keep_days counts from acked_at: it is the time of each target's 2xx (or of the
    dead-letter), not touched by later writes such as DELE being sent."""
    seed(ledger, "u1", "u2", targets=("crm", "erp"))
    ledger.mark_acked(MB, "u1", "crm", T0 + 10)
    ledger.mark_acked(MB, "u1", "erp", T0 + 20)
    ledger.mark_dele_sent(MB, ["u1"], T0 + 30)
    ledger.mark_acked(MB, "u2", "crm", T0 + 40)
    ledger.mark_parked(MB, "u2", "erp", "HTTP 422", now=T0 + 41)
    assert ledger.rows_for(MB, "u2")["erp"].acked_at is None
    ledger.mark_dead_lettered(MB, "u2", "erp: HTTP 422", T0 + 50)
    one, two = ledger.rows_for(MB, "u1"), ledger.rows_for(MB, "u2")
    assert (one["crm"].acked_at, one["erp"].acked_at) == (T0 + 10, T0 + 20)
    assert (two["crm"].acked_at, two["erp"].acked_at) == (T0 + 40, T0 + 50)


def test_migration_from_version_2_takes_acked_at_from_the_last_update(tmp_path: Path) -> None:
    """A ledger written before acked_at existed: done rows get their last update (the moment
    they were acknowledged), pending rows none, so keep_days works on old rows too."""
    path = tmp_path / "ledger.sqlite3"
    with Ledger(path) as book:
        seed(book, "done", "waiting")
        book.mark_acked(MB, "done", "crm", T0 + 5)
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE deliveries DROP COLUMN acked_at")
        conn.execute("PRAGMA user_version = 2")
    with Ledger(path) as book:
        assert book.rows_for(MB, "done")["crm"].acked_at == T0 + 5
        assert book.rows_for(MB, "waiting")["crm"].acked_at is None
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3


def test_a_failed_proof_backs_off_doubling_and_a_proof_or_an_adoption_clears_it(
    ledger: Ledger,
) -> None:
    """mark_proof_failed: every row of the identity waits (done rows too: that is what holds
    a kept message's proof back), the wait doubling with each failure; mark_proven clears it
    on done rows; adopt does not carry it to the identity that adopts the delivery."""
    seed(ledger, "a", targets=("crm", "audit"))
    ledger.mark_acked(MB, "a", "crm", T0, content=(100, "f" * 64))
    first = ledger.mark_proof_failed(MB, "a", backoff_base=120.0, now=T0)
    second = ledger.mark_proof_failed(MB, "a", backoff_base=120.0, now=T0)
    assert (first, second) == (T0 + 120.0, T0 + 240.0)
    rows = ledger.rows_for(MB, "a")
    assert {t: r.next_attempt_at for t, r in rows.items()} == {"crm": second, "audit": second}
    ledger.adopt(MB, "a", "b", "msg_b", 100, now=T0)
    adopted = ledger.rows_for(MB, "b")
    assert adopted["crm"].next_attempt_at is None  # done: its wait was about "a"'s place
    assert adopted["audit"].next_attempt_at == second  # still waits to be posted, as before
    assert {r.retr_failures for r in adopted.values()} == {0}
    ledger.mark_proven(MB, "a", T0 + 1)
    proven = ledger.rows_for(MB, "a")
    assert proven["crm"].next_attempt_at is None
    assert proven["audit"].next_attempt_at == second  # a waiting row keeps its own schedule
