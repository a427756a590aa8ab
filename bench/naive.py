"""The naive baseline: what a user writes in an afternoon with the standard library.

``poplib`` to fetch, ``email`` (``policy.default``) to parse into a JSON dict, ``urllib`` to
POST, then ``DELE``; one message at a time, then ``QUIT``. No signature, no ledger, no
retries: a message whose POST fails stays on the server. Each request carries the message's
UIDL as ``webhook-id`` so the benchmark can check that every message arrived exactly once.

    python -m bench.naive --host H --port P --user U --password-env VAR --url URL
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import json
import os
import poplib
import sys
import urllib.request
from email.message import EmailMessage
from typing import Any

__all__ = ["main", "to_json"]


def _addresses(msg: EmailMessage, name: str) -> list[dict[str, str]]:
    header = msg.get(name)
    if header is None:
        return []
    return [
        {"name": a.display_name, "address": a.addr_spec} for a in getattr(header, "addresses", ())
    ]


def to_json(raw: bytes, uidl: str) -> dict[str, Any]:
    """The message as a JSON-ready dict: addresses, subject, headers, bodies, attachments."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    attachments = []
    for part in msg.iter_attachments():
        assert isinstance(part, EmailMessage)
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            data = b""
        attachments.append(
            {
                "filename": part.get_filename(),
                "content_type": part.get_content_type(),
                "size": len(data),
                "content": base64.b64encode(data).decode("ascii"),
            }
        )
    return {
        "uidl": uidl,
        "message_id": msg.get("Message-ID"),
        "from": _addresses(msg, "From"),
        "to": _addresses(msg, "To"),
        "cc": _addresses(msg, "Cc"),
        "subject": msg.get("Subject"),
        "date": msg.get("Date"),
        "headers": [[k, str(v)] for k, v in msg.items()],
        "text": text.get_content() if isinstance(text, EmailMessage) else None,
        "html": html.get_content() if isinstance(html, EmailMessage) else None,
        "attachments": attachments,
    }


def drain(host: str, port: int, user: str, password: str, url: str) -> int:
    """Fetch, post and delete every message; return how many were delivered."""
    pop = poplib.POP3(host, port, timeout=60)
    pop.user(user)
    pop.pass_(password)
    uidls = {}
    for line in pop.uidl()[1]:
        number, uid = line.decode().split()
        uidls[int(number)] = uid
    delivered = 0
    for num in sorted(uidls):
        _resp, lines, _octets = pop.retr(num)
        body = json.dumps(to_json(b"\r\n".join(lines) + b"\r\n", uidls[num])).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is the benchmark's receiver
            url,
            data=body,
            headers={"Content-Type": "application/json", "webhook-id": uidls[num]},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our URL
            response.read()
            if 200 <= response.status < 300:
                pop.dele(num)
                delivered += 1
    pop.quit()
    return delivered


def main(argv: list[str] | None = None) -> int:
    """Drain one mailbox; the password comes from an environment variable."""
    parser = argparse.ArgumentParser(prog="python -m bench.naive", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-env", default="NAIVE_PASSWORD")
    parser.add_argument("--url", required=True)
    args = parser.parse_args(argv)
    count = drain(args.host, args.port, args.user, os.environ[args.password_env], args.url)
    print(count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
