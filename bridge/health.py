"""Readiness bookkeeping: the app reports progress here; ``/readyz`` asks for a verdict.

The rule (docs/operations.md, "Readiness"): readiness is about the *process*, not about one
mailbox. A mailbox is

- **ok** when it made progress within its stall window: a session completed (an idle poll
  included), or a message was delivered or deleted;
- **failing** when its last session ended in an error (a wrong password, a server that is
  down, a revoked OAuth2 grant). That is the mailbox's problem: metrics and alerts report
  it, ``/readyz`` lists it under ``failing`` and stays 200, and ``/readyz?mailbox=NAME``
  answers 503 for it;
- **stalled** when it made no progress for its stall window and no session ended in an
  error either: the process is stuck (a session that hangs, sessions starved of slots).
  Any stalled mailbox makes ``/readyz`` answer 503, as does a ledger that cannot be written
  (a process-wide fault).

The stall window is ``stall_factor x poll_interval``, at least ``stall_min_seconds``, so a
slow message (a large RETR, a webhook retrying) is not taken for a stall when polls are
frequent. A mailbox that has not made progress yet is not stalled until its first window
has passed: a backlog drain at start-up makes progress with every message.

Kept apart from :mod:`bridge.server` so that ``popbridge once`` and ``check``, which serve
no HTTP, do not import aiohttp's web server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bridge.redact import scrub

__all__ = ["STALL_FACTOR", "STALL_MIN_SECONDS", "HealthState", "MailboxHealth", "Readiness"]

STALL_FACTOR = 3.0
STALL_MIN_SECONDS = 120.0


@dataclass
class MailboxHealth:
    """What readiness knows about one mailbox."""

    poll_interval: float
    registered_at: float
    last_poll: float | None = None
    """When a session last completed without error."""
    last_progress: float | None = None
    """When a session last completed, or a message was last delivered or deleted."""
    last_error: str | None = None
    """Why the last session failed; None once a session completed again."""


@dataclass(frozen=True)
class Readiness:
    """The answer of :meth:`HealthState.readiness`: ready or not, and why not."""

    ready: bool
    reasons: dict[str, str] = field(default_factory=dict)
    """Mailbox name (or ``"config"`` / ``"shutdown"``) to why it holds readiness back."""
    failing: dict[str, str] = field(default_factory=dict)
    """Mailboxes whose last session failed, and why: reported, not holding readiness back."""


class HealthState:
    """Progress the app reports, and the readiness verdict derived from it.

    ``clock`` returns Unix time (``time.time`` by default) and is injectable for tests.
    """

    def __init__(
        self,
        mailboxes: Mapping[str, float] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        stall_factor: float = STALL_FACTOR,
        stall_min_seconds: float = STALL_MIN_SECONDS,
    ) -> None:
        self._clock = clock
        self.stall_factor = stall_factor
        self.stall_min_seconds = stall_min_seconds
        self._config_loaded = False
        self._shutting_down = False
        self._ledger_error: str | None = None
        self._mailboxes: dict[str, MailboxHealth] = {}
        for name, interval in (mailboxes or {}).items():
            self.register_mailbox(name, interval)

    def register_mailbox(self, name: str, poll_interval: float) -> None:
        """Expect progress from ``name`` within its stall window; keeps what is known of it."""
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        known = self._mailboxes.get(name)
        if known is not None:
            known.poll_interval = poll_interval
            return
        self._mailboxes[name] = MailboxHealth(poll_interval, registered_at=self._clock())

    def unregister_mailbox(self, name: str) -> None:
        """Forget ``name`` (removed from the config by a reload)."""
        self._mailboxes.pop(name, None)

    def set_config_loaded(self) -> None:
        """The configuration is loaded and valid."""
        self._config_loaded = True

    def set_shutting_down(self) -> None:
        """The app is stopping: readiness fails from now on."""
        self._shutting_down = True

    def ledger_failed(self, reason: str | None) -> None:
        """The ledger cannot be written (``reason``), or can again (None): not ready meanwhile."""
        self._ledger_error = reason

    def window(self, name: str) -> float:
        """Seconds without progress after which ``name`` counts as stalled."""
        state = self._mailbox(name)
        return max(self.stall_factor * state.poll_interval, self.stall_min_seconds)

    def mailbox_progress(self, name: str, when: float | None = None) -> None:
        """``name`` delivered or deleted a message (at Unix time ``when``, default now)."""
        state = self._mailboxes.get(name)
        if state is not None:  # a mailbox removed by a reload may finish its last session
            state.last_progress = self._clock() if when is None else when

    def mailbox_polled(self, name: str, when: float | None = None) -> None:
        """``name`` completed a session at Unix time ``when`` (default: now)."""
        state = self._mailbox(name)
        state.last_poll = state.last_progress = self._clock() if when is None else when
        state.last_error = None

    def mailbox_failed(self, name: str, reason: str) -> None:
        """A session of ``name`` failed; ``reason`` (scrubbed of secrets) is reported."""
        self._mailbox(name).last_error = scrub(reason)

    def _mailbox(self, name: str) -> MailboxHealth:
        try:
            return self._mailboxes[name]
        except KeyError:
            raise KeyError(f"mailbox {name!r} was not registered with HealthState") from None

    def mailbox_names(self) -> list[str]:
        """The mailboxes readiness watches."""
        return sorted(self._mailboxes)

    def mailbox_problem(self, name: str) -> str | None:
        """Why ``name`` is failing or stalled, or None when it is fine. KeyError if unknown."""
        state = self._mailbox(name)
        now = self._clock()
        if state.last_error is not None:
            return f"failing: {state.last_error}"
        limit = self.window(name)
        since = state.last_progress if state.last_progress is not None else state.registered_at
        if now - since <= limit:
            return None
        if state.last_progress is None:
            return (
                f"stalled: no progress since it started {now - since:.0f}s ago (limit {limit:.0f}s)"
            )
        return (
            f"stalled: no progress for {now - since:.0f}s (no session completed, no message "
            f"delivered or deleted), more than the limit of {limit:.0f}s"
        )

    def readiness(self) -> Readiness:
        """Ready when config is loaded, not shutting down, and no mailbox has stalled.

        Failing mailboxes are listed in :attr:`Readiness.failing` but do not make it unready.
        """
        reasons: dict[str, str] = {}
        failing: dict[str, str] = {}
        if not self._config_loaded:
            reasons["config"] = "configuration not loaded yet"
        if self._shutting_down:
            reasons["shutdown"] = "shutting down"
        if self._ledger_error:
            reasons["ledger"] = f"cannot write the ledger, fetching stopped: {self._ledger_error}"
        for name in sorted(self._mailboxes):
            problem = self.mailbox_problem(name)
            if problem is None:
                continue
            if problem.startswith("failing: "):
                failing[name] = problem.removeprefix("failing: ")
            else:
                reasons[name] = problem.removeprefix("stalled: ")
        return Readiness(ready=not reasons, reasons=reasons, failing=failing)
