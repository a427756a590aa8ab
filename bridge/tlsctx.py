"""TLS contexts built once per distinct TLS setting and shared by every session using it.

Building an :class:`ssl.SSLContext` is not free: ``ssl.create_default_context()`` loads the
system trust store, about 20 ms of CPU per call on Debian. Built per session, that capped
one process at ~26 TLS sessions/s. A context is safe to share between connections (it holds
settings and trust anchors, no per-connection state), so the app keeps one per distinct
``(tls_verify, ca_file, client_cert, client_key)``.

Files named in the config are watched by their modification time and size: a rotated CA or
client certificate is picked up by the next session, without a restart. Changes to the
*system* trust store are picked up at the next start.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Hashable
from pathlib import Path

__all__ = ["TlsContexts"]

_Stamp = tuple[str, int, int] | None


def _stamp(path: str | os.PathLike[str] | None) -> _Stamp:
    """``(path, mtime_ns, size)``; raises OSError when the file is gone (the session fails)."""
    if path is None:
        return None
    st = os.stat(path)
    return (str(path), st.st_mtime_ns, st.st_size)


class TlsContexts:
    """A small cache: one :class:`ssl.SSLContext` per distinct TLS setting."""

    def __init__(self) -> None:
        self._contexts: dict[Hashable, tuple[tuple[_Stamp, ...], ssl.SSLContext]] = {}
        self.built = 0
        """How many contexts were built so far (for tests and the benchmark)."""

    def __len__(self) -> int:
        return len(self._contexts)

    def get(
        self,
        *,
        verify: bool = True,
        ca_file: str | Path | None = None,
        client_cert: str | Path | None = None,
        client_key: str | Path | None = None,
    ) -> ssl.SSLContext:
        """The context for these settings, built on first use or when a named file changed.

        ``verify=False`` (``tls_verify: false``) encrypts without checking the certificate or
        the host name, and ignores ``ca_file``.
        """
        if not verify:
            ca_file = None
        key = (verify, str(ca_file), str(client_cert), str(client_key))
        stamps = (_stamp(ca_file), _stamp(client_cert), _stamp(client_key))
        found = self._contexts.get(key)
        if found is not None and found[0] == stamps:
            return found[1]
        context = ssl.create_default_context(cafile=ca_file)
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if client_cert is not None:
            context.load_cert_chain(client_cert, client_key)
        self._contexts[key] = (stamps, context)
        self.built += 1
        return context
