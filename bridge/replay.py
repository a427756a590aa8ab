"""Replaying dead letters: post a spooled message again, then drop it from the store on 2xx.

A replay posts the payload stored with the dead letter (or, for a dead letter spooled
before payloads were kept, one rebuilt from its raw message with the mailbox's current
payload settings) with its original ``webhook-id`` and a fresh signature, to the targets
that refused it (or to ``--target``). Every target answering 2xx removes it from the store;
otherwise it stays, its ``reason`` replaced by the new failure, and ``targets`` reduced to
the ones still refusing. Outcomes are counted in the store (``replays.json``), which the
running service exposes as ``bridge_dead_letter_replays_total``.

The caller holds the ``data_dir`` lock (:class:`bridge.lock.DataDirLock`) for a real replay:
it rewrites the store the service writes to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bridge.config import Config
from bridge.deadletter import DeadLetter, DeadLetterStore
from bridge.webhook import WebhookClient, WebhookTarget, webhook_id

__all__ = ["ReplayResult", "payload_of", "replay", "targets_of"]


@dataclass(frozen=True)
class ReplayResult:
    """What happened to one dead letter."""

    id: str
    mailbox: str
    uidl: str
    targets: tuple[str, ...]
    outcome: str
    """``delivered`` (removed from the store), ``failed`` (kept) or ``dry_run``."""
    detail: str = ""


def targets_of(letter: DeadLetter, config: Config, override: str | None) -> list[str]:
    """The targets to post ``letter`` to; ValueError saying why when there are none."""
    if override is not None:
        if override not in config.webhooks:
            known = ", ".join(sorted(config.webhooks))
            raise ValueError(f"--target {override!r} is not a webhook in the config ({known})")
        return [override]
    recorded = [t for t in letter.targets if t in config.webhooks]
    if recorded:
        return recorded
    try:
        return list(config.mailbox(letter.mailbox).webhooks)
    except KeyError:
        raise ValueError(
            f"dead letter {letter.id}: mailbox {letter.mailbox!r} is no longer in the config "
            "and no target was recorded; name one with --target"
        ) from None


def payload_of(letter: DeadLetter, config: Config) -> tuple[str, bytes]:
    """The webhook-id and JSON body to post for ``letter``."""
    wid = letter.webhook_id or webhook_id(letter.mailbox, letter.uidl)
    stored = letter.payload()
    if stored is not None:
        return wid, stored
    from bridge.app import mailbox_policy  # the payload settings of the mailbox, if known
    from bridge.mime import PayloadOptions, build_payload, payload_json

    try:
        options = mailbox_policy(config.mailbox(letter.mailbox)).payload_options
    except KeyError:
        options = PayloadOptions()
    payload = build_payload(
        letter.read(),
        mailbox=letter.mailbox,
        uidl=letter.uidl,
        webhook_id=wid,
        fetched_at=datetime.now(UTC),
        options=options,
    )
    return wid, payload_json(payload)


async def replay(
    store: DeadLetterStore,
    letters: Sequence[DeadLetter],
    config: Config,
    targets: Mapping[str, WebhookTarget],
    client: WebhookClient,
    *,
    target: str | None = None,
    dry_run: bool = False,
) -> list[ReplayResult]:
    """Replay ``letters`` one after the other; see the module docstring."""
    results: list[ReplayResult] = []
    for letter in letters:
        try:
            names = targets_of(letter, config, target)
            wid, body = payload_of(letter, config)
        except (ValueError, OSError) as exc:
            results.append(
                ReplayResult(letter.id, letter.mailbox, letter.uidl, (), "failed", str(exc))
            )
            continue
        if dry_run:
            detail = f"would post {len(body)} bytes as webhook-id {wid}"
            results.append(
                ReplayResult(
                    letter.id, letter.mailbox, letter.uidl, tuple(names), "dry_run", detail
                )
            )
            continue
        outcomes = [await client.deliver(targets[name], wid, body) for name in names]
        failed = [o for o in outcomes if not o.acked]
        if not failed:
            store.remove(letter)
            store.count_replays(letter.mailbox, "ok")
            results.append(
                ReplayResult(letter.id, letter.mailbox, letter.uidl, tuple(names), "delivered")
            )
            continue
        reason = "; ".join(f"{o.target}: {o.error or o.kind.value}" for o in failed)
        now = datetime.now(UTC)
        store.update(
            letter,
            reason=reason,
            targets=sorted(o.target for o in failed),
            replay_attempts=int(letter.meta.get("replay_attempts", 0)) + 1,
            last_replay_at=now.timestamp(),
            last_replay_at_iso=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        store.count_replays(letter.mailbox, "failed")
        results.append(
            ReplayResult(letter.id, letter.mailbox, letter.uidl, tuple(names), "failed", reason)
        )
    return results
