"""``popbridge demo``: the real bridge against a built-in POP3 server and a local receiver.

Nothing is mocked: the development POP3 server shipped in :mod:`bridge.devserver` serves a
dozen varied sample messages over a real socket, the real poller, ledger and webhook client
drain it, and a local aiohttp receiver verifies each Standard Webhooks signature and prints
what it got. The receiver answers 503 to the first delivery of one message, so the retry is
visible. No Dovecot, no network, no config file.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import os
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, TextIO

from aiohttp import web

from bridge.app import App
from bridge.config import Config
from bridge.demo.samples import sample_messages
from bridge.devserver import FakePop3Server
from bridge.logs import configure_logging
from bridge.webhook import sign

__all__ = ["DemoReceiver", "run_demo"]

RETRIED_SUBJECT = "Invoice 2026-1183"  # answered 503 once, to show a retry
SHOWN_SUBJECT = "Our new logo"  # printed whole: text, HTML, an inline image, headers


@dataclass
class DemoReceiver:
    """A local webhook receiver that checks signatures and prints a line per payload."""

    secret: str
    out: TextIO
    quiet: bool = False
    payloads: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    bad_signatures: int = 0
    refused_once: set[str] = field(default_factory=set)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _verified(self, request: web.Request, body: bytes) -> bool:
        msg_id = request.headers.get("webhook-id", "")
        stamp = request.headers.get("webhook-timestamp", "0")
        if not stamp.isdigit():
            return False
        expected = sign([self.secret], msg_id, int(stamp), body).split(" ")
        given = request.headers.get("webhook-signature", "").split(" ")
        return any(hmac.compare_digest(g, e) for g in given for e in expected)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        if not self._verified(request, body):
            self.bad_signatures += 1
            return web.Response(status=401, text="bad signature")
        payload = json.loads(body)
        if (
            payload.get("subject") == RETRIED_SUBJECT
            and payload["webhook_id"] not in self.refused_once
        ):
            self.refused_once.add(payload["webhook_id"])
            self._print(f"  receiver: 503 for {payload['webhook_id']} (the bridge will retry)")
            return web.Response(status=503, headers={"Retry-After": "0"})
        self.payloads.append(payload)
        self._show(payload)
        return web.Response(status=204)

    def _print(self, line: str) -> None:
        if not self.quiet:
            print(line, file=self.out, flush=True)

    def _show(self, p: dict[str, Any]) -> None:
        sender = ", ".join(
            f"{a.get('name') or ''} <{a.get('address') or ''}>".strip() for a in p.get("from") or []
        )
        text = (p.get("text") or p.get("html") or "").strip().replace("\n", " ")
        self._print(f"\n#{len(self.payloads):<2} {p.get('subject')!r}")
        self._print(f"    from: {sender}   date: {p.get('date')}   size: {p.get('size')} bytes")
        if text:
            self._print(f"    text: {text[:90]}{'...' if len(text) > 90 else ''}")
        for att in p.get("attachments") or []:
            inline = " (inline)" if att.get("disposition") == "inline" else ""
            self._print(
                f"    attachment: {att.get('filename') or '(no name)'!r} {att.get('content_type')} "
                f"{att.get('size')} bytes{inline}"
            )
        for defect in (p.get("defects") or [])[:3]:
            self._print(f"    defect: {json.dumps(defect, ensure_ascii=False)[:100]}")


def _demo_config(data_dir: str, server: FakePop3Server, receiver_url: str, secret: str) -> Config:
    return Config.from_dict(
        {
            "data_dir": data_dir,
            "http": {"listen": "127.0.0.1:0"},
            "log": {"level": "warning", "format": "console"},
            "webhooks": {
                "demo": {
                    "url": receiver_url,
                    "secret": secret,
                    "timeout": 5,
                    "backoff_initial": 0.1,
                    "backoff_max": 1,
                }
            },
            "mailboxes": [server.mailbox_config("demo", ["demo"], poll_interval=5)],
        },
        env={},
    )


async def _demo(keep: bool, quiet: bool, out: TextIO) -> int:
    configure_logging("warning", "console", stream=sys.stderr)
    data_dir = tempfile.mkdtemp(prefix="popbridge-demo-")
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    server = FakePop3Server(sample_messages(), user="demo", password=secrets.token_urlsafe(12))
    receiver = DemoReceiver(secret, out, quiet=quiet)
    await server.start()
    await receiver.start()
    app = App(_demo_config(data_dir, server, receiver.url, secret))
    try:
        port = await app.start_http()
        before = len(server.messages)
        print(
            f"popbridge demo: POP3 server on 127.0.0.1:{server.port} with {before} messages",
            file=out,
        )
        print(f"  webhook receiver:  {receiver.url}", file=out)
        print(f"  metrics:           http://127.0.0.1:{port}/metrics", file=out)
        print(f"  ledger:            {data_dir}/ledger.sqlite3", file=out, flush=True)
        ok = await app.once()
        left = len(server.messages)
        metrics = app.metrics.render().decode()
        shown = next((p for p in receiver.payloads if p.get("subject") == SHOWN_SUBJECT), None)
        if shown is not None and not quiet:
            print(
                f"\none complete payload, exactly as POSTed ({SHOWN_SUBJECT!r}; "
                "fields: docs/payload.md):",
                file=out,
            )
            print(json.dumps(shown, indent=2, ensure_ascii=False), file=out)
        print("\nsummary", file=out)
        print(f"  messages on the server before: {before}, after: {left}", file=out)
        print(
            f"  payloads received: {len(receiver.payloads)} "
            f"({len({p['webhook_id'] for p in receiver.payloads})} distinct webhook-ids), "
            f"HTTP requests: {receiver.requests}, bad signatures: {receiver.bad_signatures}",
            file=out,
        )
        print("  selected metrics:", file=out)
        for line in metrics.splitlines():
            if line.startswith(
                (
                    "bridge_messages_delivered_total",
                    "bridge_messages_deleted_total",
                    "bridge_webhook_requests_total{",
                    "bridge_pop3_sessions_total",
                )
            ) and not line.endswith(" 0.0"):
                print(f"    {line}", file=out)
        success = ok and left == 0 and len(receiver.payloads) == before
        print(f"\n{'OK' if success else 'FAILED'}: delete-after-ack demo finished.", file=out)
        if keep:
            print(f"Serving metrics on http://127.0.0.1:{port}/metrics; Ctrl-C to stop.", file=out)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
        return 0 if success else 1
    finally:
        await app.close()
        await receiver.stop()
        await server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def run_demo(*, keep: bool = False, quiet: bool = False, out: TextIO | None = None) -> int:
    """Run the demo to completion; returns the exit code (0 when every message made it)."""
    try:
        return asyncio.run(_demo(keep, quiet, out or sys.stdout))
    except KeyboardInterrupt:
        return 0
