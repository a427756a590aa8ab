"""Scrubbing configured secrets out of every text the bridge writes down.

A receiver's error body may quote the request's headers; a POP3 server may echo what it was
sent. Any text that reaches a sink (the log, the ledger's ``last_error``, a dead letter, the
CLI, ``/readyz``) goes through :func:`scrub` first, which replaces every *registered* secret
in every form it is sent in with ``[redacted]``.

The forms of one secret (see :func:`secret_forms`): the raw value, its JSON-escaped and
slash-escaped spellings (receivers that quote headers as JSON), and for credentials that
travel encoded, the encoded form: ``base64(user:password)`` for HTTP Basic, the SASL PLAIN
and LOGIN payloads, the XOAUTH2 payload. ``Bearer <token>`` is covered by
the raw token.

The registry is process-wide: the app registers the secrets of each config it loads (again
on every reload; values of an old config stay registered, they may still be in flight).
Values shorter than :data:`MIN_LENGTH` characters are not registered: scrubbing ``abc``
from every line would mangle the log more than it protects; values shorter than 8 are
scrubbed only where they stand as a whole word (not inside a longer word).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterable

__all__ = [
    "MIN_LENGTH",
    "REDACTED",
    "basic_forms",
    "register",
    "registered_count",
    "sasl_forms",
    "scrub",
    "scrub_values",
    "secret_forms",
]

REDACTED = "[redacted]"
MIN_LENGTH = 4
_WHOLE_WORD_BELOW = 8
"""Values shorter than this are scrubbed only where they stand as a whole word."""
_PARTIAL_MIN = 8
"""A text cut short may end with the start of a secret: at least this many characters of it
are scrubbed (shorter tails are too likely to be ordinary words)."""

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None


def _b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode("ascii")


def secret_forms(value: str) -> set[str]:
    """The spellings of one secret as it may come back in an error text."""
    forms = {value}
    escaped = json.dumps(value, ensure_ascii=False)[1:-1]
    forms.add(escaped)
    forms.add(escaped.replace("/", "\\/"))
    forms.add(json.dumps(value)[1:-1])  # \\uXXXX for non-ASCII
    return {f for f in forms if len(f) >= MIN_LENGTH}


def basic_forms(user: str, password: str) -> set[str]:
    """HTTP Basic: the password and ``base64(user:password)``."""
    return secret_forms(password) | secret_forms(_b64(f"{user}:{password}"))


def sasl_forms(user: str, password: str | None, token: str | None) -> set[str]:
    """POP3 credentials: raw, SASL PLAIN/LOGIN payloads, the XOAUTH2 payload."""
    forms: set[str] = set()
    if password:
        forms |= secret_forms(password)
        forms |= secret_forms(_b64(password))  # AUTH LOGIN sends the password on its own
        forms |= secret_forms(_b64(f"\0{user}\0{password}"))
    if token:
        forms |= secret_forms(token)
        forms |= secret_forms(_b64(f"user={user}\x01auth=Bearer {token}\x01\x01"))
    return forms


def register(values: Iterable[str]) -> None:
    """Scrub these values (already in all their forms) from every text from now on."""
    global _pattern
    new = {v for v in values if v and len(v) >= MIN_LENGTH}
    with _lock:
        if new <= _values:
            return
        _values.update(new)
        # Longest first, so a value that contains another is replaced whole. A short value
        # only counts as a whole word: "pass" must not eat the start of "passed".
        ordered = sorted(_values, key=len, reverse=True)
        _pattern = re.compile("|".join(_alternative(v) for v in ordered))


def _alternative(value: str) -> str:
    if len(value) >= _WHOLE_WORD_BELOW:
        return re.escape(value)
    return rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])"


def registered_count() -> int:
    """How many spellings are registered (for tests and diagnostics)."""
    return len(_values)


def scrub(text: str, *, cut: bool = False) -> str:
    """``text`` with every registered secret replaced by ``[redacted]``.

    ``cut=True`` says the text was cut short (the first bytes of a body): a tail that is the
    start of a secret is scrubbed too.
    """
    pattern = _pattern
    if pattern is None or not text:
        return text
    text = pattern.sub(REDACTED, text)
    if cut:
        text = _scrub_tail(text, _values)
    return text


def scrub_values(text: str, values: Iterable[str], *, cut: bool = False) -> str:
    """Like :func:`scrub`, for an explicit list of values instead of the registry."""
    ordered = sorted({v for v in values if len(v) >= MIN_LENGTH}, key=len, reverse=True)
    for value in ordered:
        if value in text:
            text = text.replace(value, REDACTED)
    if cut:
        text = _scrub_tail(text, ordered)
    return text


def _scrub_tail(text: str, values: Iterable[str]) -> str:
    """Replace a tail of ``text`` that is the start (>= _PARTIAL_MIN chars) of a value."""
    best = len(text)
    for value in values:
        if len(value) <= _PARTIAL_MIN:
            continue
        head = value[:_PARTIAL_MIN]
        start = max(0, len(text) - len(value) + 1)
        at = text.find(head, start)
        while at != -1:
            if at < best and value.startswith(text[at:]):
                best = at
                break
            at = text.find(head, at + 1)
    return text if best == len(text) else text[:best] + REDACTED
