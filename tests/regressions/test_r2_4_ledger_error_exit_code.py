"""R2-4: a ledger that cannot be written during ``popbridge once`` (data_dir full or
read-only: LedgerError while recording new messages) gives exit code 4, which the
documented table (bridge/exitcodes.py, docs/operations.md) reserves for "a connection or
authentication failure of at least one mailbox"; a cron job then looks at the POP3 server.
The table says an unusable data_dir is 2 (configuration or environment error). LedgerError
is a BridgeError, so session_exit_code files it with the POP3 failures."""

from __future__ import annotations

from bridge.errors import LedgerError
from bridge.exitcodes import ExitCode, session_exit_code


def test_ledger_failure_is_an_environment_error_not_a_mailbox_failure() -> None:
    code = session_exit_code(None, LedgerError("database or disk is full"))
    assert code is ExitCode.CONFIG_ERROR
