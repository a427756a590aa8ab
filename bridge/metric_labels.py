"""The label values of the bridge's metrics: small fixed enums, checked before use.

Labels only ever hold config names (mailbox, webhook target) or these values, so a typo
cannot create a new series (docs/metrics.md lists them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, TypeAlias, get_args

__all__ = [
    "CIRCUIT_VALUES",
    "COMMIT_COMMANDS",
    "DELIVERY_FAILURE_REASONS",
    "ERROR_CODES",
    "IDENTITY_PROBLEMS",
    "MAILBOX_DETAILS",
    "MAILBOX_ERROR_KINDS",
    "RETR_FAILURES",
    "SESSION_OUTCOMES",
    "STATUS_CLASSES",
    "TOO_LARGE_ACTIONS",
    "CircuitState",
    "CommitCommand",
    "DeliveryFailureReason",
    "ErrorCode",
    "IdentityProblem",
    "MailboxDetail",
    "MailboxErrorKind",
    "RetrFailure",
    "SessionOutcome",
    "StatusClass",
    "TooLargeAction",
    "check_label",
    "error_code_label",
    "status_class",
]

SessionOutcome: TypeAlias = Literal[
    "ok",
    "auth_error",
    "in_use",
    "login_delay",
    "connect_error",
    "timeout",
    "tls_error",
    "protocol_error",
    "server_error",
    "commit_error",
    "error",
]
SESSION_OUTCOMES: Final[tuple[SessionOutcome, ...]] = get_args(SessionOutcome)
DeliveryFailureReason: TypeAlias = Literal["transient", "rejected", "circuit_open"]
DELIVERY_FAILURE_REASONS: Final[tuple[DeliveryFailureReason, ...]] = get_args(DeliveryFailureReason)
StatusClass: TypeAlias = Literal["2xx", "3xx", "4xx", "5xx", "timeout", "error"]
STATUS_CLASSES: Final[tuple[StatusClass, ...]] = get_args(StatusClass)
ErrorCode: TypeAlias = Literal[
    "IN-USE", "LOGIN-DELAY", "SYS/TEMP", "SYS/PERM", "AUTH", "none", "other"
]
ERROR_CODES: Final[tuple[ErrorCode, ...]] = get_args(ErrorCode)
MailboxErrorKind: TypeAlias = Literal[
    "auth_error",
    "in_use",
    "login_delay",
    "connect_error",
    "timeout",
    "tls_error",
    "protocol_error",
    "server_error",
    "commit_error",
    "error",
    "rejected",
    "oversize",
    "retr_failed",
    "identity_problem",
    "ledger_write_error",
]
MAILBOX_ERROR_KINDS: Final[tuple[MailboxErrorKind, ...]] = get_args(MailboxErrorKind)
MailboxDetail: TypeAlias = Literal["essential", "full"]
MAILBOX_DETAILS: Final[tuple[MailboxDetail, ...]] = get_args(MailboxDetail)
CommitCommand: TypeAlias = Literal["DELE", "QUIT"]
COMMIT_COMMANDS: Final[tuple[CommitCommand, ...]] = get_args(CommitCommand)
IdentityProblem: TypeAlias = Literal["reused", "moved", "unstable_uidl", "duplicate"]
IDENTITY_PROBLEMS: Final[tuple[IdentityProblem, ...]] = get_args(IdentityProblem)
RetrFailure: TypeAlias = Literal["refused", "too_large", "timeout"]
RETR_FAILURES: Final[tuple[RetrFailure, ...]] = get_args(RetrFailure)
TooLargeAction: TypeAlias = Literal["reference", "parked", "rejected"]
TOO_LARGE_ACTIONS: Final[tuple[TooLargeAction, ...]] = get_args(TooLargeAction)
CircuitState: TypeAlias = Literal["closed", "half_open", "open"]
CIRCUIT_VALUES: Final[Mapping[str, int]] = {"closed": 0, "half_open": 1, "half-open": 1, "open": 2}


def status_class(status: int | Literal["timeout", "error"]) -> StatusClass:
    """Map an HTTP status (or ``"timeout"`` / ``"error"``) to its ``status_class`` label."""
    if isinstance(status, str):
        if status not in ("timeout", "error"):
            raise ValueError(f"unknown webhook outcome {status!r}")
        return status
    classes: dict[int, StatusClass] = {2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
    return classes.get(status // 100, "error")


def error_code_label(code: str | None) -> ErrorCode:
    """Map an RFC 2449 response code (``SYS/TEMP/...`` included) to its bounded label."""
    if not code:
        return "none"
    code = code.upper()
    for known in ERROR_CODES[:5]:
        if code == known or code.startswith(known + "/"):
            return known
    return "other"


def check_label(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
