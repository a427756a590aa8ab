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
            await clock.advance(66)  # poll_interval 60 s with at most +10 % jitter
            await _settle(app, {"good": 1 + minute})
        assert _sessions(app, "good") == 11
        assert _sessions(app, "bad") == 1  # auth failures back off for 30 minutes
        assert 'outcome="auth_error"} 1.0' in app.metrics.render().decode()
        assert len(receiver.requests) == 1
        await clock.advance(1800 * 1.1)
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


def _delay_app(tmp_path: Path) -> App:
    server = FakePop3Server()  # never started: only its address is used
    return App(
        _config(
            "http://127.0.0.1:9/h",
            tmp_path,
            [
                _mailbox(
                    server,
                    "m",
                    port=110,
                    poll_interval=60,
                    login_backoff_auth=1800,
                    login_backoff_in_use=30,
                )
            ],
        ),
        rng=random.Random(7),
    )


async def test_delay_after_each_kind_of_failure(tmp_path: Path) -> None:
    """Auth failures wait long, [IN-USE] short, [LOGIN-DELAY] as told, others grow to a cap."""
    app = _delay_app(tmp_path)
    try:
        state = _state(app)

        def delay_for(
            exc: BaseException | None, failures: int = 1, result: SessionResult | None = None
        ) -> float:
            state.last_exception, state.failures = exc, failures
            return app._delay_after(state, result)

        assert 1620 <= delay_for(Pop3AuthError("no")) <= 1980
        assert 27 <= delay_for(Pop3InUseError("busy", code="IN-USE")) <= 33
        assert delay_for(Pop3LoginDelayError("wait", delay=300)) == 300
        first = delay_for(Pop3ConnectionError("refused"), failures=1)
        third = delay_for(Pop3ConnectionError("refused"), failures=3)
        assert 54 <= first <= 66
        assert 216 <= third <= 264
        assert delay_for(Pop3ConnectionError("refused"), failures=30) <= 900 * 1.1
        ok = SessionResult(mailbox="m", committed=True)
        assert 54 <= delay_for(None, 0, ok) <= 66
        more = SessionResult(mailbox="m", committed=True, more_pending=True, fetched=5)
        assert delay_for(None, 0, more) == 0.0  # budget spent with more waiting: go on now
    finally:
        await app.close()
