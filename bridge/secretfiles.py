"""``*_file`` secrets that change in place: re-read when the file changes.

Kubernetes updates a mounted Secret by swapping a symlink; a vault agent rewrites a token
file. :class:`SecretFiles` answers the current content of a secret file, re-reading it only
when its identity (inode, size, modification time) changed, so asking at every session costs
one ``stat``. A file that cannot be read now (missing for a moment during a swap, empty,
not UTF-8) keeps the last good value and is logged once per problem, without its content.
Every new value is registered with :mod:`bridge.redact` before it is returned.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import structlog

from bridge.config import SecretFile, read_secret_text
from bridge.redact import register, secret_forms

__all__ = ["SecretFiles"]

log = structlog.get_logger("bridge.secrets")

_Signature = tuple[int, int, int]


class SecretFiles:
    """The current content of secret files, cached by file identity."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[_Signature, str]] = {}
        self._problems: dict[Path, str] = {}

    def read(
        self,
        secret: SecretFile,
        *,
        forms: Callable[[str], set[str]] = secret_forms,
        what: str = "secret",
    ) -> str:
        """The secret's current value; the last good one when the file cannot be read now.

        ``forms`` gives the spellings of a new value to scrub (e.g. SASL payloads);
        ``what`` names it in log lines (``mailboxes.support.password_file``).
        """
        path = secret.path
        cached = self._cache.get(path)
        fallback = cached[1] if cached is not None else secret.value.get_secret_value()
        try:
            st = os.stat(path)
        except OSError as exc:
            self._problem(path, what, f"cannot read {path}: {exc.strerror or exc}")
            return fallback
        signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        if cached is not None and cached[0] == signature:
            return cached[1]
        try:
            value = read_secret_text(path)
        except ValueError as exc:
            self._problem(path, what, str(exc))
            return fallback
        register(forms(value))
        if self._problems.pop(path, None) is not None or value != fallback:
            log.info("secret_file_reread", key=what, path=str(path), changed=value != fallback)
        self._cache[path] = (signature, value)
        return value

    def _problem(self, path: Path, what: str, problem: str) -> None:
        if self._problems.get(path) != problem:
            self._problems[path] = problem
            log.warning("secret_file_unreadable", key=what, problem=problem, using="last value")
