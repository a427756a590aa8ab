"""``popbridge check``: try what a session needs, change nothing.

For each mailbox: connect (TLS as configured), CAPA, UTF8 where offered, log in, STAT, LIST,
UIDL where the server offers it, and, only when the identity of a message has to come from its
headers (no UIDL), ``TOP n 0`` of the first message, or ``RETR`` of it where the server has no
TOP either. Nothing is marked for deletion. It reports what a session will meet: the identity
path, LOGIN-DELAY and UTF8. A slow or failed QUIT is a warning: nothing was changed, and the
checks before it passed.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bridge.errors import Pop3Error, Pop3ResponseError
from bridge.identity import can_top
from bridge.pop3 import Pop3Client

__all__ = ["QUIT_WARN_SECONDS", "CheckRow", "check_mailbox"]

QUIT_WARN_SECONDS = 5.0
"""A QUIT slower than this is reported as a warning (and the connection dropped)."""


@dataclass(frozen=True)
class CheckRow:
    """One line of ``popbridge check``."""

    mailbox: str
    ok: bool
    messages: int | None
    size: int | None
    detail: str
    warnings: tuple[str, ...] = ()


async def _identity_path(client: Pop3Client, count: int) -> str:
    """Exercise the identity the poller will use; returns how messages are told apart."""
    caps = client.capabilities
    if caps.uidl or not caps.known:
        try:
            await client.uidl()
        except Pop3ResponseError:
            if caps.uidl:
                raise
        else:
            return "identity: UIDL"
    if count == 0:
        return "identity: header hash (no UIDL; nothing to read yet)"
    if can_top(client):
        await client.top(1, 0)
        return "identity: header hash from TOP (no UIDL)"
    await client.retr(1)
    return "identity: header hash from RETR (neither UIDL nor TOP)"


async def check_mailbox(
    name: str,
    open_client: Callable[[], Awaitable[Pop3Client]],
    *,
    quit_warn: float = QUIT_WARN_SECONDS,
) -> CheckRow:
    """Check one mailbox; never raises for a POP3, network or TLS failure (it is the row).

    A QUIT that takes longer than ``quit_warn`` seconds is dropped and reported as a warning.
    """
    from bridge.app import session_outcome  # the labels `check` shares with the metrics

    warnings: list[str] = []
    try:
        client = await open_client()
        try:
            stat = await client.stat()
            await client.list()
            notes = [await _identity_path(client, stat.count)]
            caps = client.capabilities
            if caps.login_delay:
                notes.append(f"LOGIN-DELAY {caps.login_delay} s between logins")
            if client.utf8:
                notes.append("UTF8 on")
            notes.append(f"auth {client.mechanism}")
            notes.append(client.tls_version or "no TLS")
            try:
                async with asyncio.timeout(quit_warn):
                    await client.quit()
            except (Pop3Error, OSError, TimeoutError) as exc:
                client.abort()
                slow = isinstance(exc, TimeoutError) and not isinstance(exc, Pop3Error)
                warnings.append(
                    f"QUIT took longer than {quit_warn:g} s" if slow else f"QUIT failed: {exc}"
                )
        finally:
            await client.close()
    except (Pop3Error, OSError, TimeoutError, ssl.SSLError) as exc:
        return CheckRow(name, False, None, None, f"{session_outcome(exc, None)}: {exc}")
    detail = "ok; " + "; ".join(notes)
    if warnings:
        detail += "; warning: " + "; ".join(warnings)
    return CheckRow(name, True, stat.count, stat.size, detail, tuple(warnings))
