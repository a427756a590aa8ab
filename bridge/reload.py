"""Reloading the configuration of a running service (SIGHUP, ``popbridge reload``).

The running service re-reads its config file on SIGHUP. The new file is validated first
(every ``*_file`` secret read again): an invalid one is logged with its problems and
ignored, and the old config keeps running. A valid one is handed to
:meth:`bridge.app.App.reload`. Metrics: ``bridge_config_reloads_total{outcome}``,
``bridge_config_last_reload_success_timestamp_seconds`` and ``bridge_config_info{hash}``.

``popbridge reload -c FILE`` validates the file, finds the process that holds the file's
``data_dir`` lock (its pid is in ``data_dir/popbridge.lock``) and sends it SIGHUP.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from bridge.config import Config, load_config
from bridge.errors import ConfigError

if TYPE_CHECKING:
    from bridge.app import App

__all__ = [
    "ConfigChange",
    "ReloadMetrics",
    "config_hash",
    "diff_configs",
    "reload_app",
    "running_pid",
]

log = structlog.get_logger("bridge.reload")

RESTART_KEYS = ("data_dir", "max_concurrent_sessions")
"""Top-level keys a reload cannot change in a running process (``http.listen`` too)."""


@dataclass(frozen=True)
class ConfigChange:
    """What a reload changes, by mailbox and webhook name."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    webhooks_changed: list[str] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)


def diff_configs(
    old: Config, new: Config, new_names: Sequence[str], old_names: Sequence[str]
) -> ConfigChange:
    """Compare two configs; ``*_names`` are the mailboxes this process polls (its shard)."""
    added = [n for n in new_names if n not in old_names]
    removed = [n for n in old_names if n not in new_names]
    changed_hooks = sorted(
        name
        for name in set(old.webhooks) | set(new.webhooks)
        if old.webhooks.get(name) != new.webhooks.get(name)
    )
    changed = [
        n
        for n in new_names
        if n in old_names
        and (
            old.mailbox(n) != new.mailbox(n)
            or any(t in changed_hooks for t in new.mailbox(n).webhooks)
        )
    ]
    restart = [key for key in RESTART_KEYS if getattr(old, key) != getattr(new, key)]
    if old.http.listen != new.http.listen:
        restart.append("http.listen")
    return ConfigChange(added, removed, changed, changed_hooks, restart)


def config_hash(path: str | os.PathLike[str]) -> str:
    """The first 12 hex digits of the SHA-256 of the config file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


class ReloadMetrics:
    """Reload counters and the hash of the config in use, in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.reloads = Counter(
            "bridge_config_reloads_total",
            "Config reloads (SIGHUP), by outcome: ok, or failed (the old config kept running).",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("ok", "failed"):
            self.reloads.labels(outcome)
        self.last_success = Gauge(
            "bridge_config_last_reload_success_timestamp_seconds",
            "When the config in use was loaded (start-up or the last good reload).",
            registry=registry,
        )
        self.info = Gauge(
            "bridge_config_info",
            "1 for the hash of the config file in use (first 12 hex digits of its SHA-256).",
            ["hash"],
            registry=registry,
        )
        self._hash: str | None = None

    def loaded(self, digest: str, when: float) -> None:
        """A config with this hash is in use since ``when``."""
        if self._hash is not None and self._hash != digest:
            self.info.remove(self._hash)
        self._hash = digest
        self.info.labels(digest).set(1)
        self.last_success.set(when)

    def reloaded(self, outcome: Literal["ok", "failed"]) -> None:
        """Count a reload."""
        self.reloads.labels(outcome).inc()


async def reload_app(app: App, path: Path, metrics: ReloadMetrics) -> bool:
    """Re-read ``path`` and apply it to ``app``; False (old config kept) when it is invalid."""
    try:
        config = await asyncio.to_thread(load_config, path)
        digest = await asyncio.to_thread(config_hash, path)
    except ConfigError as exc:
        metrics.reloaded("failed")
        log.error(
            "config_reload_failed",
            path=str(path),
            problems=exc.problems or [str(exc)],
            detail="the previous configuration keeps running",
        )
        return False
    except OSError as exc:
        metrics.reloaded("failed")
        log.error(
            "config_reload_failed",
            path=str(path),
            problems=[f"cannot read the config file: {exc.strerror or exc}"],
            detail="the previous configuration keeps running",
        )
        return False
    change = app.reload(config)
    metrics.reloaded("ok")
    metrics.loaded(digest, app.clock.time())
    log.info(
        "config_reloaded",
        path=str(path),
        hash=digest,
        added=change.added,
        removed=change.removed,
        changed=change.changed,
        webhooks_changed=change.webhooks_changed,
    )
    if change.needs_restart:
        log.warning(
            "config_reload_needs_restart",
            keys=change.needs_restart,
            detail="these settings keep their old values until the process restarts",
        )
    return True


def running_pid(data_dir: str | os.PathLike[str]) -> int | None:
    """The pid of the popbridge process holding ``data_dir``'s lock, or None if none does."""
    from bridge.lock import LOCK_FILENAME

    path = Path(data_dir) / LOCK_FILENAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else None
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        return None  # nobody holds it: no service runs on this data_dir
    finally:
        os.close(fd)
