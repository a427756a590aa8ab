"""The ``popbridge`` command (also ``python -m bridge``).

Exit codes: 0 all went well; 1 something failed (the log says what); 2 bad usage, config or
environment (data_dir, ledger, HTTP port); 5 data_dir is locked by another popbridge process.
``once`` also exits 3 (messages left on a server) and 4 (a mailbox could not be reached or
logged into): see :mod:`bridge.exitcodes`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
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
        "refused, 5 data_dir in use by another popbridge process",
    )
    with_config(once)
    check = sub.add_parser(
        "check",
        help="log in to each mailbox (CAPA, login, STAT, LIST, UIDL or its fallback) and "
        "change nothing; exit 0 all ok, 4 a mailbox (or with --webhooks a target) failed",
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
    # check prints a table on stdout: its log lines go to stderr, not in between.
    log_stream = sys.stderr if args.command == "check" else None
    configure_logging(config.log.level, config.log.format, stream=log_stream)
    if args.command == "dead-letters":
        from bridge.deadletter_cli import run_dead_letters

        return run_dead_letters(args, config)
    if args.command == "attachments":
        from bridge.commands import prune_attachments

        return asyncio.run(prune_attachments(config, args.older_than))
    if args.command in ("run", "once"):
        from bridge.lock import DataDirLock
        from bridge.memory import fix_mmap_threshold

        fix_mmap_threshold()  # peak memory follows the messages in flight (bridge.memory)

        # Before the ledger is opened: a second process on one data_dir would post twice.
        from bridge.commands import run_once, run_service

        with DataDirLock(config.data_dir):
            if args.command == "run":
                return asyncio.run(run_service(config, args.shard, args.config))
            return asyncio.run(run_once(config, args.shard))
    if args.command == "check":
        from bridge.commands import run_check

        return asyncio.run(run_check(config, args.shard, webhooks=args.webhooks))
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
