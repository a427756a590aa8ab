"""``popbridge dead-letters``: list, show and replay the dead-letter store.

    popbridge dead-letters -c FILE                      list (one JSON object per line)
    popbridge dead-letters -c FILE show ID              the stored payload and why it failed
    popbridge dead-letters -c FILE replay ID... | --all [--target NAME] [--dry-run]

An ID is the id ``list`` shows, or a unique prefix of it (at least 4 hex digits). A replay
(not a dry run) takes the ``data_dir`` lock like ``run`` and ``once``: with the service
running on the same ``data_dir`` it exits 5 and changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bridge.config import Config
from bridge.deadletter import DeadLetter, DeadLetterStore
from bridge.redact import scrub

__all__ = ["add_parser", "run_dead_letters"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def add_parser(sub: Any) -> None:
    """Add the ``dead-letters`` command and its actions to ``sub`` (argparse subparsers)."""
    config_help = (
        "YAML config file, required (before or after the action; the dead letters live "
        "under its data_dir)"
    )
    dl = sub.add_parser(
        "dead-letters",
        help="list, show or replay the messages spooled to the dead-letter folder",
        description="Without an action: list the dead letters, one JSON object per line.",
    )
    dl.add_argument("-c", "--config", type=Path, metavar="FILE", help=config_help)
    actions = dl.add_subparsers(dest="dl_action", metavar="ACTION")

    def action(name: str, text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, help=text, description=text)
        parser.add_argument(
            "-c", "--config", type=Path, metavar="FILE", help=config_help,
            default=argparse.SUPPRESS,
        )  # fmt: skip
        return parser

    action("list", "list the dead letters (the default)")
    show = action("show", "print one dead letter: why it failed and the stored payload")
    show.add_argument("id", metavar="ID", help="its id (or a unique prefix) from the list")
    replay = action(
        "replay",
        "post dead letters again with their original webhook-id; remove each on 2xx",
    )
    replay.add_argument("ids", nargs="*", metavar="ID", help="ids (or unique prefixes)")
    replay.add_argument("--all", action="store_true", help="replay every dead letter")
    replay.add_argument(
        "--target",
        metavar="NAME",
        help="post to this webhook instead of the targets that refused it",
    )
    replay.add_argument(
        "--dry-run", action="store_true", help="say what would be posted; post and change nothing"
    )


def run_dead_letters(args: argparse.Namespace, config: Config) -> int:
    """Run the ``dead-letters`` action in ``args``; returns the exit code."""
    store = DeadLetterStore(Path(config.data_dir) / "dead-letters")
    action = args.dl_action or "list"
    if action == "list":
        return _list(store)
    if action == "show":
        letters = _select(store, [args.id])
        if letters is None:
            return EXIT_FAILED
        print(json.dumps(_show(letters[0]), indent=2, ensure_ascii=False))
        return EXIT_OK
    if bool(args.ids) == bool(args.all):
        print("popbridge: dead-letters replay: give IDs or --all (not both)", file=sys.stderr)
        return EXIT_USAGE
    letters = store.list() if args.all else _select(store, args.ids)
    if letters is None:
        return EXIT_FAILED
    if args.dry_run:
        return asyncio.run(_replay(store, letters, config, args.target, dry_run=True))
    from bridge.lock import DataDirLock

    with DataDirLock(config.data_dir):  # the running service writes the same store
        return asyncio.run(_replay(store, letters, config, args.target, dry_run=False))


def _summary(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "mailbox": letter.mailbox,
        "uidl": letter.uidl,
        "reason": scrub(letter.reason),
        "targets": letter.targets,
        "webhook_id": letter.webhook_id,
        "spooled_at": letter.meta.get("spooled_at_iso"),
        "path": str(letter.eml_path),
    }


def _list(store: DeadLetterStore) -> int:
    letters = store.list()
    for letter in letters:
        print(json.dumps(_summary(letter), ensure_ascii=False))
    if not letters:
        print(f"no dead letters in {store.directory}", file=sys.stderr)
    return EXIT_OK


def _show(letter: DeadLetter) -> dict[str, Any]:
    out = _summary(letter)
    out.update(
        size=letter.meta.get("size"),
        sha256=letter.meta.get("sha256"),
        replay_attempts=letter.meta.get("replay_attempts", 0),
    )
    stored = letter.payload()
    out["payload"] = json.loads(stored) if stored is not None else None
    if stored is None:
        out["payload_note"] = (
            "no payload was stored with this dead letter; a replay rebuilds it from the raw "
            "message with the mailbox's current settings"
        )
    return out


def _select(store: DeadLetterStore, ids: list[str]) -> list[DeadLetter] | None:
    chosen: list[DeadLetter] = []
    for wanted in ids:
        found = store.find(wanted)
        if len(found) != 1:
            what = "no dead letter" if not found else f"{len(found)} dead letters"
            print(
                f"popbridge: {what} with id {wanted!r} in {store.directory}; "
                "`popbridge dead-letters -c FILE` lists the ids",
                file=sys.stderr,
            )
            return None
        if found[0].id not in {c.id for c in chosen}:
            chosen.append(found[0])
    return chosen


async def _replay(
    store: DeadLetterStore,
    letters: list[DeadLetter],
    config: Config,
    target: str | None,
    *,
    dry_run: bool,
) -> int:
    from bridge.app import webhook_target
    from bridge.replay import replay
    from bridge.webhook import WebhookClient

    if target is not None and target not in config.webhooks:
        known = ", ".join(sorted(config.webhooks))
        print(f"popbridge: --target {target!r} is not a webhook in the config ({known})",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    targets = {name: webhook_target(name, cfg) for name, cfg in config.webhooks.items()}
    async with WebhookClient() as client:
        results = await replay(
            store, letters, config, targets, client, target=target, dry_run=dry_run
        )
    for result in results:
        print(
            json.dumps(
                {
                    "id": result.id,
                    "mailbox": result.mailbox,
                    "uidl": result.uidl,
                    "targets": list(result.targets),
                    "outcome": result.outcome,
                    "detail": scrub(result.detail),
                },
                ensure_ascii=False,
            )
        )
    done = sum(r.outcome == "delivered" for r in results)
    failed = sum(r.outcome == "failed" for r in results)
    verb = "would replay" if dry_run else "replayed"
    print(f"{verb} {len(results)}: {done} delivered, {failed} failed", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK
