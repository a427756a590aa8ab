"""The HTTP server on a real socket: /metrics, /healthz, /readyz, start and stop."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bridge.metrics import Metrics
from bridge.server import HealthState, HttpServer


class Clock:
    """A settable clock for HealthState."""

    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock: Clock) -> HealthState:
    return HealthState({"support": 60.0, "sales": 10.0}, clock=clock)


@pytest.fixture
async def server(health: HealthState) -> AsyncIterator[HttpServer]:
    metrics = Metrics()
    metrics.prepare({"support": ["main"], "sales": ["main"]})
    http = HttpServer("127.0.0.1:0", metrics, health)
    await http.start()
    try:
        yield http
    finally:
        await http.stop()


async def get(server: HttpServer, path: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{server.port}{path}") as response,
    ):
        return response.status, response.headers["Content-Type"], await response.text()


async def get_json(server: HttpServer, path: str) -> tuple[int, object]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{server.port}{path}") as response,
    ):
        return response.status, await response.json()


async def test_port_zero_binds_a_real_port(server: HttpServer) -> None:
    """listen port 0 picks a free port, which .port and .url report."""
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"


async def test_metrics_endpoint_serves_the_exposition(server: HttpServer) -> None:
    """/metrics answers 200 in the Prometheus text format with the bridge's metrics."""
    status, content_type, body = await get(server, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=")
    assert "bridge_up 1.0" in body
    assert 'bridge_messages_fetched_total{mailbox="support"} 0.0' in body


async def test_metrics_reflect_updates_between_scrapes(server: HttpServer) -> None:
    """A counter incremented after start shows on the next scrape."""
    server.metrics.message_fetched("support", 7)
    _, _, body = await get(server, "/metrics")
    assert 'bridge_messages_fetched_total{mailbox="support"} 7.0' in body


async def test_healthz_answers_ok(server: HttpServer) -> None:
    """/healthz is 200 while the loop runs."""
    assert await get_json(server, "/healthz") == (200, {"status": "ok"})


async def test_healthz_fails_while_the_loop_is_blocked(server: HttpServer) -> None:
    """A blocked event loop cannot answer /healthz, so a probe with a timeout fails."""
    results: list[str] = []

    def probe() -> None:
        url = f"http://127.0.0.1:{server.port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=0.3):
                results.append("answered")
        except (TimeoutError, urllib.error.URLError):
            results.append("timed out")

    thread = threading.Thread(target=probe)
    thread.start()
    time.sleep(1.0)  # noqa: ASYNC251 - blocking the loop on purpose is what is under test
    thread.join()
    assert results == ["timed out"]
    assert await get_json(server, "/healthz") == (200, {"status": "ok"})


@pytest.fixture
def fast_health(clock: Clock) -> HealthState:
    """Short stall windows: 3 x poll_interval, at least 5 s."""
    return HealthState({"support": 60.0, "sales": 1.0}, clock=clock, stall_min_seconds=5.0)


@pytest.fixture
async def fast_server(fast_health: HealthState) -> AsyncIterator[HttpServer]:
    http = HttpServer("127.0.0.1:0", Metrics(), fast_health)
    await http.start()
    try:
        yield http
    finally:
        await http.stop()


async def test_readyz_waits_for_config_but_not_for_a_first_poll(
    server: HttpServer, health: HealthState
) -> None:
    """Not ready before config load; ready at once after it, before any poll completed."""
    status, body = await get_json(server, "/readyz")
    assert status == 503
    assert body == {"status": "not ready", "stalled": {"config": "configuration not loaded yet"}}
    health.set_config_loaded()
    assert await get_json(server, "/readyz") == (200, {"status": "ready"})


async def test_a_long_first_drain_keeps_readiness_while_messages_are_delivered(
    fast_server: HttpServer, fast_health: HealthState, clock: Clock
) -> None:
    """poll_interval 1: a first session draining for minutes is ready while it delivers.

    The first session never completes here; each delivered message is progress.
    """
    fast_health.set_config_loaded()
    fast_health.mailbox_polled("support")
    for _ in range(60):  # a minute of draining, a message every second
        clock.now += 1.0
        fast_health.mailbox_progress("sales")
        fast_health.mailbox_polled("support")
        assert (await get_json(fast_server, "/readyz"))[0] == 200


async def test_no_progress_for_the_window_is_a_stall(
    fast_server: HttpServer, fast_health: HealthState, clock: Clock
) -> None:
    """No session completed and nothing delivered for max(3 x interval, minimum): 503."""
    fast_health.set_config_loaded()
    fast_health.mailbox_polled("support")
    fast_health.mailbox_progress("sales")
    clock.now += 5.0  # sales: exactly the 5 s minimum window, still fine
    assert (await get_json(fast_server, "/readyz"))[0] == 200
    clock.now += 1.0
    status, body = await get_json(fast_server, "/readyz")
    assert status == 503
    assert body == {
        "status": "not ready",
        "stalled": {
            "sales": "no progress for 6s (no session completed, no message delivered or "
            "deleted), more than the limit of 5s"
        },
    }
    fast_health.mailbox_progress("sales")
    assert (await get_json(fast_server, "/readyz"))[0] == 200


async def test_a_mailbox_that_never_progresses_stalls_after_its_first_window(
    fast_server: HttpServer, fast_health: HealthState, clock: Clock
) -> None:
    """A mailbox whose first session hangs is stalled once its first window has passed."""
    fast_health.set_config_loaded()
    clock.now += 6.0
    fast_health.mailbox_polled("support")
    status, body = await get_json(fast_server, "/readyz")
    assert status == 503
    assert body == {
        "status": "not ready",
        "stalled": {"sales": "no progress since it started 6s ago (limit 5s)"},
    }


async def test_a_failing_mailbox_is_reported_but_keeps_the_process_ready(
    server: HttpServer, health: HealthState, clock: Clock
) -> None:
    """A wrong password is the mailbox's problem: listed under failing, /readyz stays 200.

    ``/readyz?mailbox=NAME`` gives that mailbox's own verdict (503 while failing).
    """
    health.set_config_loaded()
    health.mailbox_polled("support")
    health.mailbox_failed("sales", "auth_error: [AUTH] login refused")
    clock.now += 3600.0  # failing for an hour: still not a stall of the process
    health.mailbox_polled("support")
    assert await get_json(server, "/readyz") == (
        200,
        {"status": "ready", "failing": {"sales": "auth_error: [AUTH] login refused"}},
    )
    assert await get_json(server, "/readyz?mailbox=sales") == (
        503,
        {"status": "not ready", "mailbox": "sales",
         "reason": "failing: auth_error: [AUTH] login refused"},
    )  # fmt: skip
    assert await get_json(server, "/readyz?mailbox=support") == (
        200, {"status": "ready", "mailbox": "support"}
    )  # fmt: skip
    status, body = await get_json(server, "/readyz?mailbox=nope")
    assert status == 404
    assert body == {"status": "unknown", "mailbox": "nope", "mailboxes": ["sales", "support"]}
    health.mailbox_polled("sales")
    assert await get_json(server, "/readyz?mailbox=sales") == (
        200, {"status": "ready", "mailbox": "sales"}
    )  # fmt: skip


async def test_delivered_and_deleted_messages_count_as_progress_through_metrics(
    clock: Clock,
) -> None:
    """The app wires Metrics progress into HealthState: a delivery or a commit is progress."""
    health = HealthState({"sales": 1.0}, clock=clock, stall_min_seconds=5.0)
    metrics = Metrics()
    metrics.on_progress(health.mailbox_progress)
    health.set_config_loaded()
    clock.now += 4.0
    metrics.message_delivered("sales", "main")
    clock.now += 4.0
    assert health.readiness().ready
    metrics.messages_deleted_committed("sales", 0)  # nothing committed: no progress
    clock.now += 2.0
    assert not health.readiness().ready
    metrics.messages_deleted_committed("sales", 3)
    assert health.readiness().ready


async def test_readyz_fails_while_shutting_down(server: HttpServer, health: HealthState) -> None:
    """After set_shutting_down, readiness fails so traffic and alerts can react."""
    health.set_config_loaded()
    health.mailbox_polled("support")
    health.mailbox_polled("sales")
    health.set_shutting_down()
    assert await get_json(server, "/readyz") == (
        503, {"status": "not ready", "stalled": {"shutdown": "shutting down"}}
    )  # fmt: skip


async def test_stop_releases_the_port_and_is_idempotent(health: HealthState) -> None:
    """After stop() the port refuses connections; stop() twice is harmless."""
    http = HttpServer("127.0.0.1:0", Metrics(), health)
    await http.start()
    port = http.port
    with pytest.raises(RuntimeError, match="already started"):
        await http.start()
    await http.stop()
    await http.stop()
    with pytest.raises(OSError, match=r"Connect call failed|refused"):
        await asyncio.open_connection("127.0.0.1", port)


async def test_address_in_use_raises_oserror(server: HttpServer, health: HealthState) -> None:
    """Binding a port that is taken raises OSError and leaves nothing running."""
    other = HttpServer(f"127.0.0.1:{server.port}", Metrics(), health)
    with pytest.raises(OSError, match=r"(?i)address already in use"):
        await other.start()
    await other.stop()


def test_health_state_rejects_unknown_mailbox_and_bad_interval(clock: Clock) -> None:
    """Reporting progress for an unregistered mailbox is a programming error, said plainly."""
    state = HealthState(clock=clock)
    with pytest.raises(KeyError, match="not registered"):
        state.mailbox_polled("ghost")
    with pytest.raises(ValueError, match="positive"):
        state.register_mailbox("a", 0)


def test_readiness_with_no_mailboxes_depends_on_config_only(clock: Clock) -> None:
    """With no mailboxes registered, readiness is just 'config loaded'."""
    state = HealthState(clock=clock)
    assert not state.readiness().ready
    state.set_config_loaded()
    assert state.readiness().ready
    assert state.readiness().reasons == {}


def test_polled_time_can_be_given_explicitly(clock: Clock) -> None:
    """mailbox_polled(name, when) uses the given time; a stale one counts as stalled."""
    state = HealthState({"a": 10.0}, clock=clock, stall_min_seconds=1.0)
    state.set_config_loaded()
    state.mailbox_polled("a", when=clock.now - 100)
    verdict = state.readiness()
    assert not verdict.ready
    assert verdict.reasons["a"].startswith("no progress for 100s")
