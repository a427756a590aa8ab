"""LOGIN-DELAY (RFC 2449): the least time a server wants between two logins of a mailbox.

A server announces ``LOGIN-DELAY n`` in CAPA (Cyrus with ``popminpoll``, Courier always says
10); one that enforces it refuses an earlier login with ``-ERR [LOGIN-DELAY]``. The bridge
keeps to the announced delay before it logs in again, so a busy mailbox is drained without
refused logins and ``run`` does not log a warning every cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.clock import Clock

__all__ = ["LoginPacer"]


@dataclass
class _Login:
    at: float
    delay: float


class LoginPacer:
    """Remembers each mailbox's last login and the LOGIN-DELAY its server announced."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._logins: dict[str, _Login] = {}

    def logged_in(self, mailbox: str, delay: int | None) -> None:
        """A login of ``mailbox`` succeeded now; ``delay`` is the LOGIN-DELAY CAPA announced."""
        if delay:
            self._logins[mailbox] = _Login(self._clock.monotonic(), float(delay))
        else:
            self._logins.pop(mailbox, None)

    def refused(self, mailbox: str, delay: float) -> None:
        """The server refused a login with [LOGIN-DELAY]: wait ``delay`` seconds from now."""
        self._logins[mailbox] = _Login(self._clock.monotonic(), delay)

    def announced(self, mailbox: str) -> float | None:
        """The delay the server of ``mailbox`` announced at the last login, if any."""
        login = self._logins.get(mailbox)
        return login.delay if login is not None else None

    def remaining(self, mailbox: str) -> float:
        """Seconds to wait before ``mailbox`` may log in again (0 when it may now)."""
        login = self._logins.get(mailbox)
        if login is None:
            return 0.0
        return max(0.0, login.at + login.delay - self._clock.monotonic())
