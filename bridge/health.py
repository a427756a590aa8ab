"""Readiness bookkeeping: the app reports progress here; ``/readyz`` asks for a verdict.

Kept apart from :mod:`bridge.server` so that ``popbridge once`` and ``check``, which serve
no HTTP, do not import aiohttp's web server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bridge.redact import scrub

__all__ = ["HealthState", "MailboxHealth", "Readiness"]


@dataclass
class MailboxHealth:
    """What readiness knows about one mailbox."""

    poll_interval: float
    registered_at: float
    last_poll: float | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class Readiness:
    """The answer of :meth:`HealthState.readiness`: ready or not, and why not."""

    ready: bool
    reasons: dict[str, str] = field(default_factory=dict)
    """Mailbox name (or ``"config"`` / ``"shutdown"``) to why it holds readiness back."""


class HealthState:
    """Progress the app reports, and the readiness verdict derived from it.

    ``clock`` returns Unix time (``time.time`` by default) and is injectable for tests.
    """

    def __init__(
        self,
        mailboxes: Mapping[str, float] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        stall_factor: float = 3.0,
    ) -> None:
        self._clock = clock
        self.stall_factor = stall_factor
        self._config_loaded = False
        self._shutting_down = False
        self._ledger_error: str | None = None
        self._mailboxes: dict[str, MailboxHealth] = {}
        for name, interval in (mailboxes or {}).items():
            self.register_mailbox(name, interval)

    def register_mailbox(self, name: str, poll_interval: float) -> None:
        """Expect ``name`` to complete a poll at least every ``stall_factor * poll_interval``."""
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self._mailboxes[name] = MailboxHealth(poll_interval, registered_at=self._clock())

    def set_config_loaded(self) -> None:
        """The configuration is loaded and valid."""
        self._config_loaded = True

    def set_shutting_down(self) -> None:
        """The app is stopping: readiness fails from now on."""
        self._shutting_down = True

    def ledger_failed(self, reason: str | None) -> None:
        """The ledger cannot be written (``reason``), or can again (None): not ready meanwhile."""
        self._ledger_error = reason

    def mailbox_polled(self, name: str, when: float | None = None) -> None:
        """``name`` completed a poll at Unix time ``when`` (default: now)."""
        state = self._mailbox(name)
        state.last_poll = self._clock() if when is None else when
        state.last_error = None

    def mailbox_failed(self, name: str, reason: str) -> None:
        """A poll of ``name`` failed; ``reason`` (no secrets) is shown while it is stalled."""
        self._mailbox(name).last_error = scrub(reason)

    def _mailbox(self, name: str) -> MailboxHealth:
        try:
            return self._mailboxes[name]
        except KeyError:
            raise KeyError(f"mailbox {name!r} was not registered with HealthState") from None

    def readiness(self) -> Readiness:
        """Ready when config is loaded, not shutting down, and no mailbox has stalled."""
        reasons: dict[str, str] = {}
        if not self._config_loaded:
            reasons["config"] = "configuration not loaded yet"
        if self._shutting_down:
            reasons["shutdown"] = "shutting down"
        if self._ledger_error:
            reasons["ledger"] = f"cannot write the ledger, fetching stopped: {self._ledger_error}"
        now = self._clock()
        for name, state in sorted(self._mailboxes.items()):
            limit = self.stall_factor * state.poll_interval
            if state.last_poll is None:
                why = f"no poll completed yet (started {now - state.registered_at:.0f}s ago)"
            elif now - state.last_poll > limit:
                why = (
                    f"last completed poll {now - state.last_poll:.0f}s ago, more than "
                    f"{self.stall_factor:g} x poll_interval ({limit:.0f}s)"
                )
            else:
                continue
            if state.last_error:
                why += f"; last error: {state.last_error}"
            reasons[name] = why
        return Readiness(ready=not reasons, reasons=reasons)
