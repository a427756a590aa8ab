"""The HTTP endpoint: ``/metrics``, ``/healthz`` and ``/readyz`` on one aiohttp server.

- ``/metrics``: the Prometheus text exposition of :class:`~bridge.metrics.Metrics`, rendered
  in chunks that yield to the event loop, so a scrape of thousands of mailboxes does not
  stall the sessions.
- ``/healthz``: 200 when the event loop runs; the handler runs on that loop, so a blocked
  loop makes the probe time out.
- ``/readyz``: about the process. 200 when the config is loaded, the app is not shutting
  down and no mailbox has stalled (no progress within its window, see
  :mod:`bridge.health`); else 503 with a JSON body naming each stalled mailbox and why.
  Mailboxes whose sessions fail (a wrong password) are listed under ``failing`` without
  making it 503. ``/readyz?mailbox=NAME`` is the verdict for one mailbox: 503 when it is
  failing or stalled, 404 for a name this replica does not poll.
"""

from __future__ import annotations

from aiohttp import web

from bridge.config import parse_listen
from bridge.health import HealthState, MailboxHealth, Readiness
from bridge.metrics import Metrics

__all__ = ["HealthState", "HttpServer", "MailboxHealth", "Readiness"]


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
        # Rendered in chunks that yield to the loop: a scrape never stalls the sessions.
        body = await self.metrics.render_async()
        return web.Response(body=body, headers={"Content-Type": self.metrics.content_type})

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        name = request.query.get("mailbox")
        if name is not None:
            return self._mailbox_readyz(name)
        verdict = self.health.readiness()
        body: dict[str, object] = {"status": "ready" if verdict.ready else "not ready"}
        if not verdict.ready:
            body["stalled"] = verdict.reasons
        if verdict.failing:
            body["failing"] = verdict.failing
        return web.json_response(body, status=200 if verdict.ready else 503)

    def _mailbox_readyz(self, name: str) -> web.Response:
        try:
            problem = self.health.mailbox_problem(name)
        except KeyError:
            return web.json_response(
                {"status": "unknown", "mailbox": name, "mailboxes": self.health.mailbox_names()},
                status=404,
            )
        if problem is None:
            return web.json_response({"status": "ready", "mailbox": name})
        return web.json_response(
            {"status": "not ready", "mailbox": name, "reason": problem}, status=503
        )
