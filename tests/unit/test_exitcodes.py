"""The ``once`` exit code from each mailbox's last session, and which code wins."""

from __future__ import annotations

import pytest

from bridge.errors import (
    LedgerError,
    Pop3AuthError,
    Pop3ConnectionError,
    Pop3InUseError,
    Pop3LoginDelayError,
    Pop3ProtocolError,
    Pop3TimeoutError,
    Pop3TLSError,
)
from bridge.exitcodes import ExitCode, OnceReport, session_exit_code
from bridge.poller import SessionResult


def result(**fields: object) -> SessionResult:
    r = SessionResult(mailbox="inbox", committed=True)
    for name, value in fields.items():
        setattr(r, name, value)
    return r


def test_documented_numbers_do_not_change() -> None:
    """The numbers are public (cron jobs test them); 2 is a ConfigError, from the CLI."""
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("session", "code"),
    [
        (result(on_server=0), ExitCode.OK),
        (result(on_server=5, stat_messages=5, deleted=5), ExitCode.OK),
        (result(on_server=5, stat_messages=5, deleted=4), ExitCode.LEFT_ON_SERVER),
        (result(on_server=1, deleted=0, skipped=1), ExitCode.LEFT_ON_SERVER),
        # STAT said 0 while LIST showed a message: LIST is the truth (review R2-3)
        (result(on_server=1, stat_messages=0, deleted=0), ExitCode.LEFT_ON_SERVER),
        (result(on_server=1, deleted=0, committed=False), ExitCode.MAILBOX_FAILED),
        # the ledger could not be written during the pass: an unusable data_dir (R2-4)
        (result(on_server=1, ledger_error="disk full"), ExitCode.CONFIG_ERROR),
        # keep: true: delivered messages left on the server on purpose are not "left over"
        (result(on_server=5, deleted=0, kept=5), ExitCode.OK),
        (result(on_server=5, deleted=1, kept=4), ExitCode.OK),
        (result(on_server=5, deleted=0, kept=4, skipped=1), ExitCode.LEFT_ON_SERVER),
    ],
)
def test_a_session_result_gives_0_3_or_4(session: SessionResult, code: ExitCode) -> None:
    """Messages still on the server after QUIT give 3; a QUIT that failed gives 4."""
    assert session_exit_code(session, None) is code


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (Pop3AuthError("no"), ExitCode.MAILBOX_FAILED),
        (Pop3ConnectionError("refused"), ExitCode.MAILBOX_FAILED),
        (Pop3TimeoutError("slow"), ExitCode.MAILBOX_FAILED),
        (Pop3TLSError("bad cert"), ExitCode.MAILBOX_FAILED),
        (Pop3ProtocolError("garbage"), ExitCode.MAILBOX_FAILED),
        (ConnectionResetError(), ExitCode.MAILBOX_FAILED),
        (Pop3InUseError("busy", code="IN-USE"), ExitCode.LEFT_ON_SERVER),
        (Pop3LoginDelayError("wait", delay=300), ExitCode.LEFT_ON_SERVER),
        (RuntimeError("a bug"), ExitCode.INTERNAL_ERROR),
        (LedgerError("database or disk is full"), ExitCode.CONFIG_ERROR),
    ],
)
def test_a_failed_session_gives_1_3_or_4(error: BaseException, code: ExitCode) -> None:
    """Connection and login failures are 4; IN-USE and LOGIN-DELAY (come back later) are 3;
    a ledger that cannot be written is an environment error, 2; anything else is a bug: 1."""
    assert session_exit_code(None, error) is code


def test_the_most_serious_code_wins() -> None:
    """Across mailboxes: 1 beats 2 beats 4 beats 3 beats 0; no mailboxes is 0."""
    ok, left, failed, bug = (
        ExitCode.OK,
        ExitCode.LEFT_ON_SERVER,
        ExitCode.MAILBOX_FAILED,
        ExitCode.INTERNAL_ERROR,
    )
    assert OnceReport({"a": ok, "b": left}).exit_code is left
    assert OnceReport({"a": failed, "b": left, "c": ok}).exit_code is failed
    assert OnceReport({"a": failed, "b": bug}).exit_code is bug
    assert OnceReport({"a": failed, "b": ExitCode.CONFIG_ERROR}).exit_code is ExitCode.CONFIG_ERROR
    assert OnceReport({"a": ExitCode.CONFIG_ERROR, "b": bug}).exit_code is bug
    assert OnceReport({}).exit_code is ok
    assert OnceReport({"a": ok})
    assert not OnceReport({"a": left})
