"""Turn a ``-ERR`` reply into the typed error from :mod:`bridge.errors`.

RFC 2449 extended response codes decide the type: ``[IN-USE]``, ``[LOGIN-DELAY]``,
``[SYS/TEMP]``, ``[SYS/PERM]`` and ``[AUTH]`` (RFC 3206). A plain ``-ERR`` to an authentication
command is an :class:`~bridge.errors.Pop3AuthError`; to anything else a
:class:`~bridge.errors.Pop3ResponseError`. Codes are hierarchical (``SYS/TEMP/X`` is a
``SYS/TEMP``), so the longest known prefix wins.
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge.errors import (
    Pop3AuthError,
    Pop3InUseError,
    Pop3LoginDelayError,
    Pop3ResponseError,
    Pop3SysPermError,
    Pop3SysTempError,
)
from bridge.pop3.responses import Response

__all__ = ["AUTH_VERBS", "error_for", "redact"]

AUTH_VERBS = frozenset({"USER", "PASS", "APOP", "AUTH"})
"""Commands whose plain ``-ERR`` means the credentials were refused."""

_BY_CODE: dict[str, type[Pop3ResponseError]] = {
    "IN-USE": Pop3InUseError,
    "LOGIN-DELAY": Pop3LoginDelayError,
    "SYS/TEMP": Pop3SysTempError,
    "SYS/PERM": Pop3SysPermError,
    "AUTH": Pop3AuthError,
}


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each non-empty secret in ``text`` by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _error_class(code: str | None, verb: str) -> type[Pop3ResponseError]:
    if code is not None:
        parts = code.split("/")
        for end in range(len(parts), 0, -1):
            cls = _BY_CODE.get("/".join(parts[:end]))
            if cls is not None:
                return cls
    if verb in AUTH_VERBS:
        return Pop3AuthError
    return Pop3ResponseError


def error_for(
    response: Response,
    verb: str,
    *,
    mailbox: str | None = None,
    login_delay: int | None = None,
    secrets: Iterable[str] = (),
    hint: str | None = None,
) -> Pop3ResponseError:
    """The typed error for a ``-ERR`` ``response`` to ``verb``.

    ``secrets`` are scrubbed from the server's text, in case a server echoes what it was sent.
    ``login_delay`` (from CAPA) becomes ``delay`` on a :class:`Pop3LoginDelayError`.
    ``hint`` (what to do, see :mod:`bridge.pop3.hints`) replaces the generic advice on a
    refused login.
    """
    text = redact(response.text, secrets)
    cls = _error_class(response.code, verb)
    shown = f"[{response.code}] {text}" if response.code else text
    message = f"the server refused {verb}: -ERR {shown}".rstrip()
    if cls is Pop3AuthError:
        message += f"; {hint or 'check the username and the password or token'}"
    if cls is Pop3LoginDelayError:
        return Pop3LoginDelayError(
            message,
            delay=float(login_delay) if login_delay is not None else None,
            code=response.code,
            text=text,
            command=verb,
            mailbox=mailbox,
        )
    return cls(message, code=response.code, text=text, command=verb, mailbox=mailbox)
