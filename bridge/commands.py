"""What `popbridge run`, `once`, `check` and `attachments prune` do once the config is loaded:
the service under its signals (SIGHUP reloads `run`), one pass, a check, a prune."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bridge import __version__
from bridge.errors import ConfigError
from bridge.exitcodes import ExitCode

if TYPE_CHECKING:
    from bridge.config import Config

EXIT_OK = int(ExitCode.OK)
EXIT_FAILED = int(ExitCode.INTERNAL_ERROR)


def install_signals(stop: asyncio.Event, *, reload: Callable[[], None] | None = None) -> None:
    """First SIGTERM/SIGINT/SIGHUP: wind down gracefully. Second: exit at once.

    Exiting at once loses nothing: deletions only take effect at QUIT, and every
    acknowledgement is already in the ledger, so the next run deletes without reposting.
    With ``reload`` (``popbridge run``) SIGHUP calls it instead: the config is re-read and
    the process never stops for it. Without (``once``), SIGHUP stops gracefully, saying so,
    instead of killing the process between DELE and QUIT.
    """
    loop = asyncio.get_running_loop()

    def handler(signum: int) -> None:
        if stop.is_set():
            os._exit(128 + signum)
        import structlog

        structlog.get_logger("bridge").warning(
            "stopping", signal=signal.Signals(signum).name, detail="finishing in-flight work"
        )
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, handler, signum)
    if reload is not None:
        loop.add_signal_handler(signal.SIGHUP, reload)


async def run_service(config: Config, shard: tuple[int, int] | None, path: Path) -> int:
    from bridge.app import App
    from bridge.logs import configure_logging
    from bridge.reload import ReloadMetrics, config_hash, reload_app

    stop = asyncio.Event()
    app: App | None = None
    reloading: set[asyncio.Task[None]] = set()

    async def reload_once() -> None:
        assert app is not None
        if await reload_app(app, path, reload_metrics):
            configure_logging(app.config.log.level, app.config.log.format)

    def on_sighup() -> None:
        if app is None or stop.is_set():
            return
        # One reload at a time, in signal order: chain on the previous one.
        previous = list(reloading)

        async def after_previous() -> None:
            if previous:
                await asyncio.wait(previous)
            await reload_once()

        task = asyncio.create_task(after_previous(), name="reload")
        reloading.add(task)
        task.add_done_callback(reloading.discard)

    install_signals(stop, reload=on_sighup)
    app = App(config, shard=shard)
    reload_metrics = ReloadMetrics(app.metrics.registry)
    with contextlib.suppress(OSError):
        reload_metrics.loaded(config_hash(path), app.clock.time())
    try:
        try:
            port = await app.start_http()
        except OSError as exc:
            raise ConfigError(
                f"http.listen {config.http.listen}: cannot serve /metrics there: "
                f"{exc.strerror or exc}; choose another address or port"
            ) from exc
        import structlog

        structlog.get_logger("bridge").info(
            "started", version=__version__, mailboxes=list(app.mailboxes), http_port=port
        )
        await app.run(stop)
    finally:
        await app.close()
    return EXIT_OK


async def run_once(config: Config, shard: tuple[int, int] | None) -> int:
    from bridge.app import App
    from bridge.progress import progress

    stop = asyncio.Event()
    install_signals(stop)  # before any connection opens
    app = App(config, shard=shard)
    try:
        async with progress(app.metrics, list(app.mailboxes), sys.stderr):
            report = await app.once(stop)
    finally:
        await app.close()
    return int(report.exit_code)


async def prune_attachments(config: Config, older_than: float) -> int:
    from bridge.app import attachment_store, prune_attachments
    from bridge.errors import AttachmentStoreError

    if config.attachments is None:
        problem = "attachments: no content store is configured, so there is nothing to prune"
        raise ConfigError(problem, [problem])
    store = attachment_store(config.attachments, Path(config.data_dir))
    try:
        result = await prune_attachments(store, older_than)
    except AttachmentStoreError as exc:
        print(f"popbridge: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await store.close()
    summary = {
        "store": store.kind,
        "older_than_seconds": older_than,
        "removed": result.removed,
        "removed_bytes": result.removed_bytes,
        "kept": result.kept,
        "kept_bytes": result.kept_bytes,
    }
    print(json.dumps(summary))
    return EXIT_OK


async def run_check(
    config: Config, shard: tuple[int, int] | None, *, webhooks: bool = False
) -> int:
    from bridge.app import App

    app = App(config, shard=shard, open_ledger=False)  # check changes nothing, on disk too
    try:
        rows = await app.check()
    finally:
        await app.close()
    width = max([len("MAILBOX")] + [len(r.mailbox) for r in rows])
    print(f"{'MAILBOX':<{width}}  {'STATUS':<6}  {'MESSAGES':>8}  {'BYTES':>12}  DETAIL")
    for r in rows:
        count = "-" if r.messages is None else str(r.messages)
        size = "-" if r.size is None else str(r.size)
        status = "ok" if r.ok else "FAILED"
        print(f"{r.mailbox:<{width}}  {status:<6}  {count:>8}  {size:>12}  {r.detail}")
    ok = all(r.ok for r in rows)
    if webhooks:
        from bridge.app import webhook_target
        from bridge.webhook.probe import check_targets

        targets = [webhook_target(name, cfg) for name, cfg in config.webhooks.items()]
        checks = await check_targets(targets)
        width = max([len("WEBHOOK")] + [len(c.target) for c in checks])
        print(f"\n{'WEBHOOK':<{width}}  {'STATUS':<6}  DETAIL")
        for c in checks:
            print(f"{c.target:<{width}}  {'ok' if c.ok else 'FAILED':<6}  {c.detail}")
        ok = ok and all(c.ok for c in checks)
    return EXIT_OK if ok else int(ExitCode.MAILBOX_FAILED)
