"""A lean aiohttp webhook receiver for the benchmark, run in its own process.

It answers every POST with 200 and keeps, in memory only, how many requests arrived and how
often each delivery key was seen: the ``webhook-id`` header when there is one (the bridge and
the naive script send it), else a hash of the body (fetchmail's curl MDA). Recording every
request to a file, as ``tests.receiver`` does, would make the receiver the bottleneck.

    python -m bench.receiver [--port 0]        # prints "READY <url>" when listening

Control endpoints, for the benchmark driver:

- ``GET /_stats``: ``{"requests", "distinct", "duplicates", "bytes", "with_signature"}``
- ``POST /_reset``: forget everything counted so far.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import signal

from aiohttp import web

__all__ = ["main"]


class Counter:
    """Delivery keys seen and how often."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self.requests = 0
        self.bytes = 0
        self.with_signature = 0

    def reset(self) -> None:
        """Forget everything."""
        self.seen = {}
        self.requests = self.bytes = self.with_signature = 0

    def stats(self) -> dict[str, int]:
        """The counts as a JSON-ready dict."""
        return {
            "requests": self.requests,
            "distinct": len(self.seen),
            "duplicates": sum(n - 1 for n in self.seen.values() if n > 1),
            "bytes": self.bytes,
            "with_signature": self.with_signature,
        }


def make_app(counter: Counter) -> web.Application:
    """The receiver's aiohttp application (no access log, 1 GiB body limit)."""

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        key = request.headers.get("webhook-id") or hashlib.sha1(body).hexdigest()
        counter.seen[key] = counter.seen.get(key, 0) + 1
        counter.requests += 1
        counter.bytes += len(body)
        if request.headers.get("webhook-signature", "").startswith("v1,"):
            counter.with_signature += 1
        return web.Response(status=200)

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response(counter.stats())

    async def reset(_request: web.Request) -> web.Response:
        counter.reset()
        return web.json_response(counter.stats())

    app = web.Application(client_max_size=1 << 30)
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_reset", reset)
    app.router.add_post("/{tail:.*}", hook)
    return app


async def _serve(host: str, port: int) -> None:
    runner = web.AppRunner(make_app(Counter()), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    server = site._server  # aiohttp has no public accessor for the bound port
    assert isinstance(server, asyncio.base_events.Server)
    bound = server.sockets[0].getsockname()[1]
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    print(f"READY http://{host}:{bound}/hook", flush=True)
    try:
        await stopped.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.receiver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
