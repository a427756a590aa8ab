"""A sample webhook receiver for the compose trial: standard library only.

It verifies the Standard Webhooks signature (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``) with the secret in the file named by ``WEBHOOK_SECRET_FILE``, prints
one JSON line per message (id, mailbox, from, subject, attachments) and answers ``204``.
A bad or missing signature gets ``401``, a stale timestamp ``401``, a body that is not JSON
``400``. Receivers in production should also drop a ``webhook-id`` they have already
processed (see docs/webhooks.md).

    WEBHOOK_SECRET_FILE=secret python receiver.py --port 8080
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 300
MAX_BODY_BYTES = 256 * 1024 * 1024


def load_secret(path: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret stored in ``path``."""
    with open(path, encoding="utf-8") as fh:
        secret = fh.read().strip()
    return base64.b64decode(secret.removeprefix("whsec_"))


def signature_ok(key: bytes, msg_id: str, timestamp: str, body: bytes, header: str) -> bool:
    """True when one ``v1,<base64>`` entry of ``header`` is the HMAC of id.timestamp.body."""
    expected = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    for entry in header.split():
        version, _, value = entry.partition(",")
        if version != "v1":
            continue
        try:
            candidate = base64.b64decode(value, validate=True)
        except ValueError:
            continue
        if hmac.compare_digest(candidate, expected):
            return True
    return False


class Handler(BaseHTTPRequestHandler):
    """Verify, print, acknowledge."""

    key = b""
    server_version = "popbridge-sample-receiver"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._answer(413, "payload too large")
            return
        body = self.rfile.read(length)
        msg_id = self.headers.get("webhook-id", "")
        timestamp = self.headers.get("webhook-timestamp", "")
        signature = self.headers.get("webhook-signature", "")
        if not (msg_id and timestamp.isdigit() and signature):
            self._answer(401, "missing webhook headers")
            return
        if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
            self._answer(401, "timestamp outside the tolerance")
            return
        if not signature_ok(self.key, msg_id, timestamp, body, signature):
            self._answer(401, "bad signature")
            return
        try:
            payload = json.loads(body)
        except ValueError:
            self._answer(400, "body is not JSON")
            return
        summary = {
            "webhook_id": msg_id,
            "mailbox": payload.get("mailbox"),
            "from": [a.get("address") for a in payload.get("from") or []],
            "subject": payload.get("subject"),
            "attachments": [a.get("filename") for a in payload.get("attachments") or []],
            "size": payload.get("size"),
        }
        print(json.dumps(summary, ensure_ascii=False), flush=True)
        self._answer(204, "")

    def _answer(self, status: int, reason: str) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(reason)))
        self.end_headers()
        if reason:
            self.wfile.write(reason.encode())

    def log_message(self, format: str, *args: object) -> None:
        """Requests are summarised in do_POST; keep the access log off stdout."""


def main() -> int:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a container's port
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    Handler.key = load_secret(os.environ["WEBHOOK_SECRET_FILE"])
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"receiver listening on {args.host}:{args.port}", file=sys.stderr, flush=True)
    # As PID 1 in a container nothing handles SIGTERM by default: exit on it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
