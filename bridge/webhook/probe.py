"""``popbridge check --webhooks``: one signed test event to each target, and what it answered.

The test event is not a message payload: its body is ``{"type": "popbridge.test", ...}``
(docs/webhooks.md), signed like every delivery, with a fresh ``webhook-id``. It is sent once
(no retries) and changes nothing: no mail is fetched or deleted, no ledger is written.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime

from bridge import __version__
from bridge.webhook.client import WebhookClient
from bridge.webhook.outcome import DeliveryKind
from bridge.webhook.target import WebhookTarget

__all__ = ["TEST_EVENT_TYPE", "TargetCheck", "check_targets", "make_test_event"]

TEST_EVENT_TYPE = "popbridge.test"


@dataclasses.dataclass(frozen=True)
class TargetCheck:
    """One line of ``popbridge check --webhooks``."""

    target: str
    ok: bool
    status: int | None
    detail: str


def make_test_event(target: str, now: datetime | None = None) -> tuple[str, bytes]:
    """A fresh ``webhook-id`` and the JSON body of a test event for ``target``."""
    webhook_id = "msg_" + base64.b32encode(os.urandom(20)).decode().lower()
    body = {
        "type": TEST_EVENT_TYPE,
        "target": target,
        "sent_at": (now or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "popbridge_version": __version__,
        "detail": "a test event from `popbridge check --webhooks`; no message is attached",
    }
    return webhook_id, json.dumps(body).encode()


async def check_targets(targets: Iterable[WebhookTarget]) -> list[TargetCheck]:
    """Send one test event to each target (one request, no retry) and report the answers."""
    rows = []
    async with WebhookClient() as client:
        for target in targets:
            webhook_id, body = make_test_event(target.name)
            once = dataclasses.replace(target, max_attempts=1)
            outcome = await client.deliver(once, webhook_id, body)
            ok = outcome.kind is DeliveryKind.ACKED
            detail = f"HTTP {outcome.status}" if ok else (outcome.error or outcome.kind.value)
            rows.append(TargetCheck(target.name, ok, outcome.status, detail))
    return rows
