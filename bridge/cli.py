"""The ``popbridge`` command (also ``python -m bridge``).

Exit codes: 0 all went well; 1 something failed (the log says what); 2 bad usage, config or
environment (data_dir, ledger, HTTP port); 5 data_dir is locked by another popbridge process.
``once`` also exits 3 (messages left on a server) and 4 (a mailbox could not be reached or
logged into): see :mod:`bridge.exitcodes`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bridge import __version__
from bridge.errors import ConfigError, DataDirError, DataDirLockedError, LedgerError

if TYPE_CHECKING:
    from bridge.config import Config

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 5


def _shard(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be INDEX/COUNT, e.g. 0/3, not {text!r}") from None
    if not sep or n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(
            f"must be INDEX/COUNT with 0 <= INDEX < COUNT, not {text!r}"
        )
    return i, n


def _shard_from_env(text: str) -> tuple[int, int]:
    """``--shard`` also takes ``HOSTNAME-ORDINAL/COUNT`` (a StatefulSet pod name)."""
    index, sep, count = text.partition("/")
    if sep and not index.isdigit() and "-" in index:
        index = index.rsplit("-", 1)[1]
    return _shard(f"{index}{sep}{count}")


def _duration(text: str) -> float:
    from bridge.attachments.store import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="popbridge",
        description="Fetch mail over POP3, POST it as signed JSON to webhooks, and delete it "
        "only after the webhook acknowledged it.",
    )
    parser.add_argument("--version", action="version", version=f"popbridge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-c",
            "--config",
            required=True,
            type=Path,
            metavar="FILE",
            help="YAML config file (see docs/config.md)",
        )
        p.add_argument(
            "--shard",
            type=_shard_from_env,
            metavar="INDEX/COUNT",
            help="poll only the mailboxes whose stable hash falls in this share "
            "(INDEX may be a StatefulSet pod name such as popbridge-2)",
        )

    run = sub.add_parser("run", help="run the service")
    with_config(run)
    once = sub.add_parser(
        "once",
        help="one pass over every mailbox, then exit: 0 all delivered and deleted, 1 internal "
        "error, 2 config error, 3 messages left on a server, 4 a mailbox unreachable or login "
        "refused",
    )
    with_config(once)
    check = sub.add_parser(
        "check", help="connect, authenticate and STAT each mailbox; change nothing"
    )
    with_config(check)
    check.add_argument(
        "--webhooks",
        action="store_true",
        help="also send one signed test event (type popbridge.test) to each webhook target "
        "and show its answer",
    )
    validate = sub.add_parser(
        "validate", help="check the config file without connecting anywhere, then exit"
    )
    validate.add_argument(
        "-c",
        "--config",
        required=True,
        type=Path,
        metavar="FILE",
        help="YAML config file (see docs/config.md)",
    )

    reload = sub.add_parser(
        "reload",
        help="validate the config file, then tell the running service (its pid is in "
        "data_dir/popbridge.lock) to re-read it (SIGHUP)",
    )
    reload.add_argument(
        "-c",
        "--config",
        required=True,
        type=Path,
        metavar="FILE",
        help="YAML config file of the running service",
    )

    schema = sub.add_parser(
        "schema",
        help="print a JSON Schema: payload (for receivers: allows fields added later), "
        "payload-strict (exactly this release's fields), config",
    )
    schema.add_argument("which", choices=["payload", "payload-strict", "config"])

    demo = sub.add_parser("demo", help="run the bridge against a built-in POP3 server and receiver")
    demo.add_argument("--keep", action="store_true", help="keep serving metrics until Ctrl-C")
    demo.add_argument("--quiet", action="store_true", help="print only the summary")

    from bridge.deadletter_cli import add_parser as add_dead_letters

    add_dead_letters(sub)

    attachments = sub.add_parser(
        "attachments", help="the attachment content store (attachments sent by reference)"
    )
    attachment_commands = attachments.add_subparsers(
        dest="attachments_command", metavar="ACTION", required=True
    )
    prune = attachment_commands.add_parser(
        "prune", help="delete stored attachments older than a duration (retention)"
    )
    prune.add_argument(
        "-c",
        "--config",
        required=True,
        type=Path,
        metavar="FILE",
        help="YAML config file (its attachments section names the store)",
    )
    prune.add_argument(
        "--older-than",
        required=True,
        type=_duration,
        metavar="DURATION",
        help="age of the last write, e.g. 30d, 12h, 1d12h (s, m, h, d, w); keep it longer "
        "than your receivers take to fetch",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"popbridge: {exc}", file=sys.stderr)  # the message lists one line per problem
        return EXIT_USAGE
    except DataDirLockedError as exc:
        print(f"popbridge: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except (DataDirError, LedgerError) as exc:
        print(f"popbridge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (`popbridge schema config | head`): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "schema":
        if args.which in ("payload", "payload-strict"):
            from bridge.mime import payload_schema

            schema = payload_schema(strict=args.which == "payload-strict")
        else:
            from bridge.config import config_schema

            schema = config_schema()
        print(json.dumps(schema, indent=2, sort_keys=False))
        return EXIT_OK
    if args.command == "demo":
        from bridge.demo import run_demo

        return run_demo(keep=args.keep, quiet=args.quiet)

    from bridge.config import load_config
    from bridge.logs import configure_logging

    if args.config is None:  # dead-letters takes -c before or after its action
        print(f"popbridge {args.command}: -c/--config FILE is required", file=sys.stderr)
        return EXIT_USAGE
    config = load_config(args.config)
    if args.command == "validate":
        from bridge.lock import check_data_dir

        problem = check_data_dir(config.data_dir)
        if problem:
            print(f"popbridge: {args.config}: {problem}", file=sys.stderr)
            return EXIT_USAGE
        mailboxes = _plural(len(config.mailboxes), "mailbox")
        counts = f"{mailboxes}, {_plural(len(config.webhooks), 'webhook')}"
        print(f"{args.config}: ok ({counts})")
        return EXIT_OK
    if args.command == "reload":
        return _signal_reload(config, args.config)
    configure_logging(config.log.level, config.log.format)
    if args.command == "dead-letters":
        from bridge.deadletter_cli import run_dead_letters

        return run_dead_letters(args, config)
    if args.command == "attachments":
        return asyncio.run(_prune_attachments(config, args.older_than))
    if args.command in ("run", "once"):
        from bridge.lock import DataDirLock
        from bridge.memory import fix_mmap_threshold

        fix_mmap_threshold()  # peak memory follows the messages in flight (bridge.memory)

        # Before the ledger is opened: a second process on one data_dir would post twice.
        with DataDirLock(config.data_dir):
            if args.command == "run":
                return asyncio.run(_run(config, args.shard, args.config))
            return asyncio.run(_once(config, args.shard))
    if args.command == "check":
        return asyncio.run(_check(config, args.shard, webhooks=args.webhooks))
    raise AssertionError(args.command)  # argparse only lets known commands through


def _signal_reload(config: Config, path: Path) -> int:
    from bridge.reload import running_pid

    pid = running_pid(config.data_dir)
    if pid is None:
        print(
            f"popbridge: no running popbridge holds data_dir {config.data_dir}; nothing to "
            "reload (is the service running with this config file?)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        print(f"popbridge: process {pid} is gone; nothing to reload", file=sys.stderr)
        return EXIT_FAILED
    except PermissionError:
        print(
            f"popbridge: not allowed to signal process {pid}; run as the service's user",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(f"{path}: ok; sent SIGHUP to popbridge (pid {pid}): its log says what changed")
    return EXIT_OK


def _plural(count: int, noun: str) -> str:
    """``1 mailbox``, ``2 mailboxes``, ``2 webhooks``."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun}{'es' if noun.endswith('x') else 's'}"


def _install_signals(stop: asyncio.Event, *, reload: Callable[[], None] | None = None) -> None:
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


async def _run(config: Config, shard: tuple[int, int] | None, path: Path) -> int:
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

    _install_signals(stop, reload=on_sighup)
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


async def _once(config: Config, shard: tuple[int, int] | None) -> int:
    from bridge.app import App
    from bridge.progress import progress

    stop = asyncio.Event()
    _install_signals(stop)  # before any connection opens
    app = App(config, shard=shard)
    try:
        async with progress(app.metrics, list(app.mailboxes), sys.stderr):
            report = await app.once(stop)
    finally:
        await app.close()
    return int(report.exit_code)


async def _prune_attachments(config: Config, older_than: float) -> int:
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


async def _check(config: Config, shard: tuple[int, int] | None, *, webhooks: bool = False) -> int:
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
    return EXIT_OK if ok else EXIT_FAILED
