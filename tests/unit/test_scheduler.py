"""Scheduling: intervals, jitter, backoff by failure kind, isolation and the global limit.

The app takes an injectable clock; these tests drive a virtual one, so nothing sleeps for real
while the sessions themselves run over real sockets against fake POP3 servers.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from pathlib import Path
from typing import Any

from bridge.app import App, MailboxState
from bridge.config import Config
from bridge.errors import (
    Pop3AuthError,
    Pop3ConnectionError,
    Pop3InUseError,
    Pop3LoginDelayError,
)
from bridge.poller import SessionResult
from bridge.scheduler import first_delay, next_slot, phase_of
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import SECRET, make_message
from tests.receiver import WebhookReceiver


class VirtualClock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), future))
        await future

    async def advance(self, seconds: float) -> None:
        await asyncio.sleep(0.01)  # let every task reach its next sleep first
        self.now += seconds
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)


def _mailbox(server: FakePop3Server, name: str, **extra: Any) -> dict[str, Any]:
    return server.mailbox_config(name, ["main"], **{"poll_interval": 60, **extra})


def _config(url: str, data_dir: Path, boxes: list[dict[str, Any]], **top: Any) -> Config:
    return Config.from_dict(
        {
            "data_dir": str(data_dir),
            "webhooks": {"main": {"url": url, "secret": SECRET}},
            "mailboxes": boxes,
            "metrics": {"mailbox_detail": "full"},  # sessions counted per mailbox
            **top,
        },
        env={},
    )


def _sessions(app: App, mailbox: str) -> float:
    total = 0.0
    for line in app.metrics.render().decode().splitlines():
        if line.startswith("bridge_pop3_sessions_total{") and f'mailbox="{mailbox}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _settle(app: App, expected: dict[str, float], within: float = 10.0) -> None:
    """Wait (for real I/O, not virtual time) until the session counts reach ``expected``."""
    for _ in range(int(within * 100)):
        if all(_sessions(app, m) >= n for m, n in expected.items()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError({m: _sessions(app, m) for m in expected})


async def test_failing_mailbox_backs_off_and_never_delays_the_others(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A mailbox whose login is refused waits login_backoff_auth; a healthy one keeps its pace."""
    good = await FakePop3Server([make_message(1)]).start()
    bad = await FakePop3Server().start()
    bad.refuse_login("-ERR [AUTH] invalid credentials")
    clock = VirtualClock()
    app = App(
        _config(receiver.url, tmp_path, [_mailbox(good, "good"), _mailbox(bad, "bad")]),
        clock=clock,
        rng=random.Random(1),
    )
    stop = asyncio.Event()
    runner = asyncio.create_task(app.run(stop))
    try:
        await clock.advance(5)  # past the initial random offset (at most 5 s)
        await _settle(app, {"good": 1, "bad": 1})
        for minute in range(1, 11):
            await clock.advance(60)  # one slot of the mailbox's 60 s grid per minute
            await _settle(app, {"good": 1 + minute})
        assert _sessions(app, "good") == 11
        assert _sessions(app, "bad") == 1  # auth failures back off for 30 minutes
        assert 'outcome="auth_error"} 1.0' in app.metrics.render().decode()
        assert len(receiver.requests) == 1
        await clock.advance(1800 + 60)  # the first slot of its grid after 30 minutes
        await _settle(app, {"bad": 2})
    finally:
        stop.set()
        await runner
        await app.close()
        await good.stop()
        await bad.stop()


async def test_global_limit_bounds_concurrent_sessions(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """With max_concurrent_sessions 1, slow sessions of three mailboxes never overlap."""
    servers = [await FakePop3Server([make_message(i)]).start() for i in range(3)]
    for server in servers:
        server.delay_on("STAT", 0.2)
    clock = VirtualClock()
    app = App(
        _config(
            receiver.url,
            tmp_path,
            [_mailbox(s, f"m{i}") for i, s in enumerate(servers)],
            max_concurrent_sessions=1,
        ),
        clock=clock,
    )
    peak = 0
    stop = asyncio.Event()

    async def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, sum(s.locked for s in servers))
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    runner = asyncio.create_task(app.run(stop))
    try:
        await clock.advance(5)
        await _settle(app, {"m0": 1, "m1": 1, "m2": 1})
        assert peak == 1
    finally:
        stop.set()
        await runner
        await watcher
        await app.close()
        for server in servers:
            await server.stop()


def _state(app: App) -> MailboxState:
    return app.mailboxes["m"]


def _delay_app(tmp_path: Path, clock: VirtualClock | None = None, mailboxes: int = 1) -> App:
    server = FakePop3Server()  # never started: only its address is used
    extra = {"port": 110, "poll_interval": 60, "login_backoff_auth": 1800}
    boxes = [_mailbox(server, "m", login_backoff_in_use=30, **extra)]
    boxes += [_mailbox(server, f"box-{i:04d}", **extra) for i in range(mailboxes - 1)]
    return App(_config("http://127.0.0.1:9/h", tmp_path, boxes), rng=random.Random(7), clock=clock)


def _on_grid(state: MailboxState, when: float) -> bool:
    """``when`` is on the mailbox's grid: its phase plus a whole number of intervals."""
    offset = (when - state.phase) % state.config.poll_interval
    return min(offset, state.config.poll_interval - offset) < 1e-6


async def test_delay_after_each_kind_of_failure(tmp_path: Path) -> None:
    """Auth failures wait long, [IN-USE] short, [LOGIN-DELAY] as told, others grow to a cap;
    every wait of an interval or more ends on the mailbox's own grid slot."""
    clock = VirtualClock()
    app = _delay_app(tmp_path, clock)
    try:
        state = _state(app)

        def delay_for(
            exc: BaseException | None, failures: int = 1, result: SessionResult | None = None
        ) -> float:
            state.last_exception, state.failures = exc, failures
            return app._delay_after(state, result)

        auth = delay_for(Pop3AuthError("no"))
        assert 1800 <= auth < 1860
        assert _on_grid(state, clock.now + auth)
        assert 27 <= delay_for(Pop3InUseError("busy", code="IN-USE")) <= 33  # under an interval
        login_delay = delay_for(Pop3LoginDelayError("wait", delay=300))
        assert 300 <= login_delay < 360
        assert _on_grid(state, clock.now + login_delay)
        first = delay_for(Pop3ConnectionError("refused"), failures=1)
        third = delay_for(Pop3ConnectionError("refused"), failures=3)
        assert 60 <= first < 120
        assert _on_grid(state, clock.now + first)
        assert 240 <= third < 300
        assert _on_grid(state, clock.now + third)
        assert delay_for(Pop3ConnectionError("refused"), failures=30) < 900 + 60
        ok = SessionResult(mailbox="m", committed=True)
        after_ok = delay_for(None, 0, ok)
        assert 0 < after_ok <= 60
        assert _on_grid(state, clock.now + after_ok)
        more = SessionResult(mailbox="m", committed=True, more_pending=True, fetched=5)
        assert delay_for(None, 0, more) == 0.0  # budget spent with more waiting: go on now
    finally:
        await app.close()


def test_phases_spread_evenly_over_the_interval() -> None:
    """10,000 mailbox names give phases spread evenly: every 6 s of a 60 s interval holds
    1,000 of them within 10 %; and the first polls of 10,000 mailboxes use the whole
    interval, while a handful start within a few seconds."""
    interval = 60.0
    phases = [phase_of(f"mailbox-{i}", interval) for i in range(10_000)]
    assert all(0 <= p < interval for p in phases)
    buckets = [0] * 10
    for p in phases:
        buckets[int(p // 6)] += 1
    assert all(900 <= b <= 1100 for b in buckets), buckets
    assert phase_of("support", interval) == phase_of("support", interval)  # stable
    firsts = [first_delay(p, interval, 10_000) for p in phases]
    assert max(firsts) > 59
    assert min(firsts) < 1
    assert max(first_delay(p, interval, 3) for p in phases) <= 5.0


def test_next_slot_is_on_the_grid_and_strictly_later() -> None:
    """next_slot gives the first grid time strictly after its argument."""
    assert next_slot(100.0, 7.0, 60.0) == 127.0
    assert next_slot(127.0, 7.0, 60.0) == 187.0
    assert next_slot(6.0, 7.0, 60.0) == 7.0


async def test_after_an_outage_mailboxes_come_back_spread_on_their_own_slots(
    tmp_path: Path,
) -> None:
    """When every mailbox failed at the same moment (a server outage), each one's retry is
    on its own grid slot, so the retries spread over an interval instead of a herd."""
    clock = VirtualClock()
    app = _delay_app(tmp_path, clock, mailboxes=600)
    try:
        returns = []
        for state in app.mailboxes.values():
            state.last_exception, state.failures = Pop3ConnectionError("refused"), 3
            delay = app._delay_after(state, None)
            assert _on_grid(state, clock.now + delay)
            returns.append(delay)
        assert all(240 <= d < 300 for d in returns)
        buckets = [0] * 6  # 10 s each: about 100 mailboxes per bucket, none near 600
        for d in returns:
            buckets[int((d - 240) // 10)] += 1
        assert all(70 <= b <= 130 for b in buckets), buckets
    finally:
        await app.close()


async def test_poll_lag_histogram_is_exported(receiver: WebhookReceiver, tmp_path: Path) -> None:
    """The service records every poll's lateness in bridge_poll_lag_seconds."""
    server = await FakePop3Server().start()
    clock = VirtualClock()
    app = App(_config(receiver.url, tmp_path, [_mailbox(server, "m")]), clock=clock)
    stop = asyncio.Event()
    runner = asyncio.create_task(app.run(stop))
    try:
        await clock.advance(5)
        await _settle(app, {"m": 1})
        text = app.metrics.render().decode()
        assert "bridge_poll_lag_seconds_count 1.0" in text
        assert 'bridge_poll_lag_seconds_bucket{le="5.0"} 1.0' in text  # the clock jumped 5 s
    finally:
        stop.set()
        await runner
        await app.close()
        await server.stop()
