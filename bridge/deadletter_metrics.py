"""Dead-letter metrics, read from the store at each scrape.

``popbridge dead-letters replay`` runs in its own process (holding the ``data_dir`` lock),
so its outcomes are counted in the store (``replays.json``) and the service reports them
from there, together with how many dead letters wait in the store.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from bridge.deadletter import DeadLetterStore

__all__ = ["DeadLetterCollector"]


class DeadLetterCollector(Collector):
    """`bridge_dead_letters{mailbox}`, `bridge_dead_letter_replays_total{mailbox,outcome}`."""

    def __init__(self, store: DeadLetterStore) -> None:
        self.store = store

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        waiting = GaugeMetricFamily(
            "bridge_dead_letters",
            "Dead letters in the store, waiting for a replay or for removal.",
            labels=["mailbox"],
        )
        counts: dict[str, int] = {}
        directory = self.store.directory
        if directory.is_dir():
            for folder in directory.iterdir():
                if folder.is_dir():
                    counts[folder.name] = sum(
                        1
                        for p in folder.glob("*.json")
                        if not p.name.endswith(".payload.json") and not p.name.startswith(".")
                    )
        for mailbox, count in sorted(counts.items()):
            waiting.add_metric([mailbox], count)
        yield waiting
        replays = CounterMetricFamily(
            "bridge_dead_letter_replays",
            "Dead letters replayed with `popbridge dead-letters replay`, by outcome: ok "
            "(acknowledged and removed) or failed (kept with the new reason).",
            labels=["mailbox", "outcome"],
        )
        for mailbox, per in sorted(self.store.replay_counts().items()):
            for outcome in ("ok", "failed"):
                replays.add_metric([mailbox, outcome], per.get(outcome, 0))
        yield replays
