"""The HTTP endpoint: ``/metrics``, ``/healthz`` and ``/readyz`` on one aiohttp server.

- ``/metrics``: the Prometheus text exposition of :class:`~bridge.metrics.Metrics`, rendered
  in a worker thread so a large registry does not stall the event loop.
- ``/healthz``: 200 when the event loop runs; the handler runs on that loop, so a blocked
  loop makes the probe time out.
- ``/readyz``: 200 when the config is loaded and every mailbox completed a poll within
  ``stall_factor`` (3) poll intervals; else 503 with a JSON body naming each stalled
  mailbox and why. The app reports progress into a :class:`HealthState`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from bridge.config import parse_listen
from bridge.metrics import Metrics

__all__ = ["HealthState", "HttpServer", "MailboxHealth", "Readiness"]


@dataclass
class MailboxHealth:
    """What readiness knows about one mailbox."""

    poll_interval: float
    registered_at: float
    last_poll: float | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class Readiness:
    """The answer of :meth:`HealthState.readiness`: ready or not, and why not."""

    ready: bool
    reasons: dict[str, str] = field(default_factory=dict)
    """Mailbox name (or ``"config"`` / ``"shutdown"``) to why it holds readiness back."""


class HealthState:
    """Progress the app reports, and the readiness verdict derived from it.

    ``clock`` returns Unix time (``time.time`` by default) and is injectable for tests.
    """

    def __init__(
        self,
        mailboxes: Mapping[str, float] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        stall_factor: float = 3.0,
    ) -> None:
        self._clock = clock
        self.stall_factor = stall_factor
        self._config_loaded = False
        self._shutting_down = False
        self._mailboxes: dict[str, MailboxHealth] = {}
        for name, interval in (mailboxes or {}).items():
            self.register_mailbox(name, interval)

    def register_mailbox(self, name: str, poll_interval: float) -> None:
        """Expect ``name`` to complete a poll at least every ``stall_factor * poll_interval``."""
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self._mailboxes[name] = MailboxHealth(poll_interval, registered_at=self._clock())

    def set_config_loaded(self) -> None:
        """The configuration is loaded and valid."""
        self._config_loaded = True

    def set_shutting_down(self) -> None:
        """The app is stopping: readiness fails from now on."""
        self._shutting_down = True

    def mailbox_polled(self, name: str, when: float | None = None) -> None:
        """``name`` completed a poll at Unix time ``when`` (default: now)."""
        state = self._mailbox(name)
        state.last_poll = self._clock() if when is None else when
        state.last_error = None

    def mailbox_failed(self, name: str, reason: str) -> None:
        """A poll of ``name`` failed; ``reason`` (no secrets) is shown while it is stalled."""
        self._mailbox(name).last_error = reason

    def _mailbox(self, name: str) -> MailboxHealth:
        try:
            return self._mailboxes[name]
        except KeyError:
            raise KeyError(f"mailbox {name!r} was not registered with HealthState") from None

    def readiness(self) -> Readiness:
        """Ready when config is loaded, not shutting down, and no mailbox has stalled."""
        reasons: dict[str, str] = {}
        if not self._config_loaded:
            reasons["config"] = "configuration not loaded yet"
        if self._shutting_down:
            reasons["shutdown"] = "shutting down"
        now = self._clock()
        for name, state in sorted(self._mailboxes.items()):
            limit = self.stall_factor * state.poll_interval
            if state.last_poll is None:
                why = f"no poll completed yet (started {now - state.registered_at:.0f}s ago)"
            elif now - state.last_poll > limit:
                why = (
                    f"last completed poll {now - state.last_poll:.0f}s ago, more than "
                    f"{self.stall_factor:g} x poll_interval ({limit:.0f}s)"
                )
            else:
                continue
            if state.last_error:
                why += f"; last error: {state.last_error}"
            reasons[name] = why
        return Readiness(ready=not reasons, reasons=reasons)


class HttpServer:
    """Serves the three endpoints on ``listen`` (``host:port``; port 0 picks a free one)."""

    def __init__(self, listen: str, metrics: Metrics, health: HealthState) -> None:
        self.host, self._port = parse_listen(listen)
        self.metrics = metrics
        self.health = health
        self._runner: web.AppRunner | None = None

    def build_app(self) -> web.Application:
        """The aiohttp application with the three routes (for embedding or testing)."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def start(self) -> None:
        """Bind and start serving. Raises OSError when the address cannot be bound."""
        if self._runner is not None:
            raise RuntimeError("HttpServer already started")
        runner = web.AppRunner(
            self.build_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host or None, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop serving and release the port. Safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def port(self) -> int:
        """The port being served (the real one once started with port 0)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the server, for logs and the demo."""
        host = self.host or "0.0.0.0"  # noqa: S104 - only a display value for "all interfaces"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    async def _metrics(self, _request: web.Request) -> web.Response:
        # Rendering hundreds of mailboxes takes tens of milliseconds: keep it off the loop.
        body = await asyncio.to_thread(self.metrics.render)
        return web.Response(body=body, headers={"Content-Type": self.metrics.content_type})

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        verdict = self.health.readiness()
        if verdict.ready:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready", "stalled": verdict.reasons}, status=503)
