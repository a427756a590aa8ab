"""A real aiohttp webhook receiver for tests: records every request, answers as scripted.

Use it through the ``receiver`` pytest fixture, or standalone (another process, the
demo)::

    async with WebhookReceiver() as receiver:
        receiver.sequence([500, Reply(429, retry_after=2), 200])
        ... POST to receiver.url ...
        assert receiver.distinct_webhook_ids() == {...}

or from a shell: ``python -m tests.receiver --port 8080 --record requests.jsonl``.

How a request is answered, first match wins: the ``decide`` callable (if it returns
something other than None), then the next item of ``sequence``, then the default
``reply``. A :class:`Reply` can delay, set ``Retry-After`` or other headers, or
drop the connection without answering. :meth:`WebhookReceiver.stop` and
:meth:`WebhookReceiver.start` again (or :meth:`WebhookReceiver.restart`) bring it
down and back on the same port, like a receiver that crashes and recovers.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import hashlib
import inspect
import json
import signal
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["ClaimChecker", "RecordedRequest", "Reply", "WebhookReceiver", "receiver"]


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status, an optional body, headers, a delay before answering.

    ``retry_after`` becomes a ``Retry-After`` header (seconds or an HTTP date);
    ``drop=True`` closes the connection after ``delay`` without any answer.
    """

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    retry_after: int | float | str | None = None
    drop: bool = False


@dataclass
class RecordedRequest:
    """One request as the receiver saw it; ``answered`` is the status sent (None if dropped)."""

    method: str
    path: str
    query: str
    headers: CIMultiDictProxy[str]
    body: bytes
    time: float
    """Wall-clock arrival time (``time.time()``)."""
    monotonic: float
    """Arrival time on ``time.monotonic()``, for measuring gaps between retries."""
    peer: tuple[str, int] | None = None
    """The client's address and port: equal ports mean a reused (pooled) connection."""
    answered: int | None = None

    @property
    def webhook_id(self) -> str | None:
        """The ``webhook-id`` header, if present."""
        return self.headers.get("webhook-id")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def to_record(self) -> dict[str, Any]:
        """A JSON-serialisable dict (body in base64), for the standalone recorder."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_b64": base64.b64encode(self.body).decode("ascii"),
            "time": self.time,
            "peer": list(self.peer) if self.peer else None,
            "answered": self.answered,
        }


ReplySpec = Reply | int
Decider = Callable[[RecordedRequest], ReplySpec | Awaitable[ReplySpec | None] | None]


def _as_reply(spec: ReplySpec) -> Reply:
    return spec if isinstance(spec, Reply) else Reply(status=spec)


class WebhookReceiver:
    """A scriptable HTTP server on loopback that records every request it gets."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        path: str = "/hook",
        reply: ReplySpec = 200,
        on_request: Callable[[RecordedRequest], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Prepare a receiver; ``port=0`` picks a free port at the first :meth:`start`.

        With ``ssl_context`` it serves HTTPS and :attr:`url` starts with ``https://``.
        """
        self.host = host
        self.port = port
        self.path = path
        self.requests: list[RecordedRequest] = []
        self._default = _as_reply(reply)
        self._sequence: collections.deque[Reply] = collections.deque()
        self._decide: Decider | None = None
        self._on_request = on_request
        self._ssl_context = ssl_context
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        """True while the server accepts connections."""
        return self._runner is not None

    @property
    def url(self) -> str:
        """The webhook URL (any path is accepted; this one is conventional)."""
        if self.port == 0:
            raise RuntimeError("the receiver has not been started yet")
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}{self.path}"

    async def start(self) -> WebhookReceiver:
        """Listen (again) on ``host:port``; the first start fixes the port for restarts."""
        if self._runner is not None:
            return self
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(
            runner, self.host, self.port, reuse_address=True, ssl_context=self._ssl_context
        )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        if self.port == 0:
            server = site._server  # aiohttp exposes no public accessor for the bound port
            assert isinstance(server, asyncio.base_events.Server)
            self.port = server.sockets[0].getsockname()[1]
        self._runner = runner
        return self

    async def stop(self) -> None:
        """Stop listening and close every connection; in-flight delayed replies are cut off."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def restart(self) -> None:
        """Stop and start again on the same port."""
        await self.stop()
        await self.start()

    async def __aenter__(self) -> WebhookReceiver:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ scripting

    def reply(self, spec: ReplySpec) -> None:
        """Answer every request not otherwise scripted with ``spec`` (a status or a Reply)."""
        self._default = _as_reply(spec)

    def sequence(self, specs: Iterable[ReplySpec]) -> None:
        """Answer the next requests with these, in order, then fall back to :meth:`reply`."""
        self._sequence.extend(_as_reply(s) for s in specs)

    def decide(self, decider: Decider | None) -> None:
        """Let ``decider(request)`` choose the answer (None from it falls through)."""
        self._decide = decider

    def clear(self) -> None:
        """Forget recorded requests and pending sequence items."""
        self.requests.clear()
        self._sequence.clear()

    # ------------------------------------------------------------------ inspection

    def webhook_ids(self) -> list[str]:
        """The ``webhook-id`` of every request, in arrival order (duplicates kept)."""
        return [r.webhook_id for r in self.requests if r.webhook_id is not None]

    def distinct_webhook_ids(self) -> set[str]:
        """The set of distinct ``webhook-id`` values seen."""
        return set(self.webhook_ids())

    async def wait_for(self, count: int, within: float = 5.0) -> list[RecordedRequest]:
        """Wait until at least ``count`` requests arrived; TimeoutError after ``within`` s."""
        async with asyncio.timeout(within):
            while len(self.requests) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.requests

    # ------------------------------------------------------------------ serving

    async def _choose(self, request: RecordedRequest) -> Reply:
        if self._decide is not None:
            chosen = self._decide(request)
            if inspect.isawaitable(chosen):
                chosen = await chosen
            if chosen is not None:
                return _as_reply(chosen)
        if self._sequence:
            return self._sequence.popleft()
        return self._default

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=request.query_string,
            headers=CIMultiDictProxy(CIMultiDict(request.headers)),
            body=body,
            time=time.time(),
            monotonic=time.monotonic(),
            peer=_peer(request),
        )
        self.requests.append(recorded)
        self._arrived.set()
        reply = await self._choose(recorded)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop:
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPInternalServerError  # never reaches the client: the socket is gone
        headers = dict(reply.headers)
        if reply.retry_after is not None:
            headers["Retry-After"] = str(reply.retry_after)
        recorded.answered = reply.status
        if self._on_request is not None:
            self._on_request(recorded)
        return web.Response(status=reply.status, body=reply.body, headers=headers)


class ClaimChecker:
    """What a careful receiver of attachments by reference does, as a ``decide`` callable.

    A body over ``max_body`` bytes gets 413 (like n8n's or Make's body limit). Otherwise every
    attachment with a ``content_ref`` (and a ``raw_ref``) is fetched before answering: an
    ``http(s)`` URL with a plain GET (a presigned S3 URL needs no credentials), anything else
    read as a file path. Its bytes must match the stated ``size`` and ``sha256``; then 200,
    else 422 with the problem in the body (and in :attr:`problems`). What was fetched is kept
    in :attr:`fetched` by sha256.
    """

    def __init__(self, max_body: int | None = None) -> None:
        self.max_body = max_body
        self.fetched: dict[str, bytes] = {}
        self.problems: list[str] = []

    async def __call__(self, request: RecordedRequest) -> Reply:
        if self.max_body is not None and len(request.body) > self.max_body:
            return Reply(413, body=b"request entity too large")
        payload = request.json()
        wanted = [
            (a["content_ref"], a["size"], a["sha256"])
            for a in payload.get("attachments", [])
            if a.get("content_ref")
        ]
        if payload.get("raw_ref"):
            wanted.append((payload["raw_ref"], payload["size"], payload["sha256"]))
        problems = []
        for ref, size, sha256 in wanted:
            try:
                data = await _fetch(ref)
            except (OSError, aiohttp.ClientError) as exc:
                problems.append(f"cannot fetch {ref}: {exc!r}")
                continue
            if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
                problems.append(f"{ref}: {len(data)} bytes that do not hash to {sha256}")
                continue
            self.fetched[sha256] = data
        if problems:
            self.problems.extend(problems)
            return Reply(422, body="; ".join(problems).encode())
        return Reply(200)


async def _fetch(ref: str) -> bytes:
    if ref.startswith(("http://", "https://")):
        async with aiohttp.ClientSession() as session, session.get(ref) as response:
            if response.status != 200:
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status, message="GET failed"
                )
            return await response.read()
    return await asyncio.to_thread(Path(ref).read_bytes)


def _peer(request: web.Request) -> tuple[str, int] | None:
    info = request.transport.get_extra_info("peername") if request.transport else None
    return (str(info[0]), int(info[1])) if info else None


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    """A started :class:`WebhookReceiver` on a free loopback port, stopped after the test."""
    server = WebhookReceiver()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# ---------------------------------------------------------------------- standalone


async def _serve(args: argparse.Namespace, record: TextIO | None) -> None:
    def write(request: RecordedRequest) -> None:
        if record is not None:
            record.write(json.dumps(request.to_record()) + "\n")
            record.flush()

    server = WebhookReceiver(
        args.host, args.port, reply=Reply(args.status, delay=args.delay), on_request=write
    )
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    async with server:
        print(f"READY {server.url}", flush=True)
        await stopped.wait()


def main(argv: list[str] | None = None) -> int:
    """Run a receiver until SIGINT/SIGTERM, appending each request to a JSON-lines file."""
    parser = argparse.ArgumentParser(prog="python -m tests.receiver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--status", type=int, default=200, help="status for every request")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before answering")
    parser.add_argument("--record", help="append each request as a JSON line to this file")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        record = None
        if args.record:
            record = stack.enter_context(open(args.record, "a", encoding="utf-8"))
        stack.enter_context(contextlib.suppress(KeyboardInterrupt))
        asyncio.run(_serve(args, record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
