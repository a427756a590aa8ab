"""A one-line progress display for long CLI operations, shown only on a terminal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TextIO

from bridge.metrics import Metrics

_COUNTERS = (
    ("fetched", "bridge_messages_fetched_total"),
    ("delivered", "bridge_messages_delivered_total"),
    ("deleted", "bridge_messages_deleted_total"),
)


def progress_line(metrics: Metrics, mailboxes: Sequence[str]) -> str:
    """``12 fetched, 12 delivered, 10 deleted, 30 on server`` summed over ``mailboxes``."""
    totals: dict[str, float] = {}
    for label, name in _COUNTERS:
        totals[label] = 0.0
        for metric in metrics.registry.collect():
            for sample in metric.samples:
                # per mailbox with full detail; summed (no mailbox label) with essential
                mailbox = sample.labels.get("mailbox")
                if sample.name == name and (mailbox is None or mailbox in mailboxes):
                    totals[label] += sample.value
    waiting = sum(
        metrics.registry.get_sample_value("bridge_mailbox_messages", {"mailbox": m}) or 0.0
        for m in mailboxes
    )
    parts = [f"{int(totals[label])} {label}" for label, _ in _COUNTERS]
    return ", ".join([*parts, f"{int(waiting)} on server"])


@contextlib.asynccontextmanager
async def progress(
    metrics: Metrics, mailboxes: Sequence[str], stream: TextIO, *, interval: float = 0.5
) -> AsyncIterator[None]:
    """Redraw the progress line on ``stream`` while the block runs, if it is a terminal."""
    if not stream.isatty():
        yield
        return

    async def redraw() -> None:
        while True:
            stream.write("\r\033[K" + progress_line(metrics, mailboxes))
            stream.flush()
            await asyncio.sleep(interval)

    task = asyncio.create_task(redraw())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        stream.write("\r\033[K" + progress_line(metrics, mailboxes) + "\n")
        stream.flush()
