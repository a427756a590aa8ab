"""The exit codes of ``popbridge once``, for cron jobs and CI (docs/operations.md).

The code describes the state a pass leaves behind, not what happened to change it: a message
parked on the server gives 3 on every run for as long as it stays there, whether it was
rejected in this run or in an earlier one.

==  ======================================================================================
0   every mailbox was reached and nothing is left on its server: all delivered and deleted
    (or, for a mailbox with ``keep: true``, delivered and kept there on purpose)
1   internal error (a bug; the log has the traceback)
2   configuration or environment error (bad config file, unusable data_dir, also when the
    ledger could not be written during the pass: disk full, read-only)
3   messages are left on a server: parked (rejected, oversize), a transient webhook failure,
    the session budget, a failed DELE, the mailbox in use, or a LOGIN-DELAY wait
4   a connection or authentication failure of at least one mailbox (connect, TLS, login,
    timeout, a broken server reply, or the connection lost before QUIT committed)
==  ======================================================================================

When mailboxes end differently the most serious code wins: 1, then 2, then 4, then 3, then 0.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge.errors import BridgeError, LedgerError, Pop3InUseError, Pop3LoginDelayError

if TYPE_CHECKING:
    from bridge.poller import SessionResult

__all__ = ["ExitCode", "OnceReport", "session_exit_code"]


class ExitCode(enum.IntEnum):
    """What a ``popbridge`` command's exit status means."""

    OK = 0
    INTERNAL_ERROR = 1
    CONFIG_ERROR = 2
    LEFT_ON_SERVER = 3
    MAILBOX_FAILED = 4


_SEVERITY = (
    ExitCode.OK,
    ExitCode.LEFT_ON_SERVER,
    ExitCode.MAILBOX_FAILED,
    ExitCode.CONFIG_ERROR,
    ExitCode.INTERNAL_ERROR,
)


def session_exit_code(result: SessionResult | None, error: BaseException | None) -> ExitCode:
    """The exit code for one mailbox from its last session: its result, or why it failed."""
    if isinstance(error, LedgerError) or (result is not None and result.ledger_error):
        return ExitCode.CONFIG_ERROR  # the data_dir cannot be written: full, read-only, gone
    if result is None:
        if isinstance(error, Pop3InUseError | Pop3LoginDelayError):
            return ExitCode.LEFT_ON_SERVER  # the server asks to come back later
        if isinstance(error, BridgeError | OSError | TimeoutError):
            return ExitCode.MAILBOX_FAILED
        return ExitCode.INTERNAL_ERROR
    if not result.committed:
        return ExitCode.MAILBOX_FAILED  # QUIT failed: nothing of this session was deleted
    if result.on_server > result.deleted + result.kept:  # LIST's count: STAT may say less
        return ExitCode.LEFT_ON_SERVER  # kept messages are delivered: keep: true wants them there
    return ExitCode.OK


@dataclass(frozen=True)
class OnceReport:
    """How a ``once`` pass ended for each mailbox; true when every mailbox ended with 0."""

    codes: Mapping[str, ExitCode]

    @property
    def exit_code(self) -> ExitCode:
        """The most serious of the mailboxes' codes (0 when there are no mailboxes)."""
        return max(self.codes.values(), key=_SEVERITY.index, default=ExitCode.OK)

    @property
    def ok(self) -> bool:
        """True when every mailbox was reached, delivered everything and deleted it."""
        return self.exit_code is ExitCode.OK

    def __bool__(self) -> bool:
        return self.ok
