"""The bridge against real POP3 servers other than Dovecot: GNU mailutils and Courier.

Each server (tests/pop3servers.py, started once per run) is checked, then drained with `once`
once per login method and TLS mode it offers: every message posted exactly once by webhook-id,
byte-exact, the mailbox empty after, and a second `once` posts nothing.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import structlog

from bridge.app import App
from bridge.config import Config
from bridge.errors import Pop3AuthError
from bridge.pop3 import Pop3Client
from tests.integration.kit import config_dict
from tests.pop3servers import ServerBed
from tests.receiver import WebhookReceiver

pytestmark = pytest.mark.dovecot


def odd_messages(tag: str) -> list[bytes]:
    """Messages that trip servers and clients: dot lines, a 10,000-character line, 8-bit text.
    Stored with LF line ends, as a local delivery agent writes a Maildir file."""
    date = "Date: Thu, 26 Nov 2026 10:00:00 +0000\n"
    head = "From: Sender <s@example.org>\nTo: inbox@example.org\n" + date
    return [
        (
            head + f"Subject: {tag} dots\nMessage-ID: <{tag}-1@example.org>\n\n"
            ".\n..\n.leading dot\nend\n"
        ).encode(),
        (
            head
            + f"Subject: {tag} long line\nMessage-ID: <{tag}-2@example.org>\n\n"
            + "x" * 10_000
            + "\n"
        ).encode(),
        head.encode()
        + f"Subject: {tag} eight bit\nMessage-ID: <{tag}-3@example.org>\n".encode()
        + b"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
        + b"Content-Transfer-Encoding: 8bit\n\nGr\xc3\xbc\xc3\x9fe, \xe2\x82\xac 5\n",
    ]


def _config(server: ServerBed, user: Any, url: str, data_dir: Path, **box: Any) -> Config:
    tls = box.pop("tls", "starttls")
    port = server.tls_port if tls == "implicit" else server.port
    mailbox = {"include_raw": True, **box}
    return Config.from_dict(
        config_dict(server, user, url, data_dir, tls=tls, port=port, mailbox=mailbox)  # type: ignore[arg-type]
    )


async def _once(config: Config) -> bool:
    app = App(config)
    try:
        return await app.once()
    finally:
        await app.close()


def _without_added_headers(server: ServerBed, raw: bytes) -> bytes:
    """The message minus the header lines the server adds itself (mailutils: ``X-UIDL``)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    kept = [
        line
        for line in lines
        if not any(line.lower().startswith(h.lower() + b":") for h in server.added_headers)
    ]
    return b"\r\n".join(kept) + sep + body


def _combinations(server: ServerBed) -> list[tuple[str, str]]:
    return [(auth, tls) for auth in server.methods for tls in ("starttls", "implicit")]


async def test_check_then_once_with_every_auth_and_tls_mode(
    other_server: ServerBed, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """On each server, for every login method and TLS mode it offers: `check` is ok and says
    which identity path it tried; `once` posts each message exactly once (by webhook-id),
    byte-exact, leaves the mailbox empty, and a second `once` posts nothing."""
    for index, (auth, tls) in enumerate(_combinations(other_server)):
        receiver.clear()
        user = other_server.new_user()
        raws = odd_messages(f"{auth}-{tls}")
        user.deliver_many(raws)
        config = _config(
            other_server, user, receiver.url, tmp_path / str(index), auth=auth, tls=tls
        )
        where = f"{other_server.name} auth={auth} tls={tls}"

        app = App(config)
        try:
            [row] = await app.check()
        finally:
            await app.close()
        assert row.ok, f"{where}: {row.detail}"
        assert row.messages == len(raws), where
        assert "identity: UIDL" in row.detail, where
        assert f"auth {auth}" in row.detail, where
        assert user.count() == len(raws), f"{where}: check changed the mailbox"
        if other_server.name == "courier":
            assert "LOGIN-DELAY 10 s" in row.detail, row.detail
            assert "UTF8 on" in row.detail, row.detail

        with structlog.testing.capture_logs() as logs:
            assert await _once(config), f"{where}\n{other_server.log_tail()}"
        [login] = [e for e in logs if e["event"] == "pop3_login"]
        assert login["tls"] == tls, where
        assert str(login["tls_version"]).startswith("TLSv1."), where
        assert login["mechanism"] == auth, where
        assert login["utf8"] is (other_server.name == "courier"), where
        ids = receiver.webhook_ids()
        assert len(ids) == len(raws) == len(set(ids)), f"{where}: {ids}"
        got = {r.json()["subject"]: base64.b64decode(r.json()["raw"]) for r in receiver.requests}
        for raw in raws:
            subject = raw.split(b"Subject: ", 1)[1].split(b"\n", 1)[0].decode()
            delivered = _without_added_headers(other_server, got[subject])
            assert delivered == raw.replace(b"\n", b"\r\n"), f"{where}: {subject} differs"
        assert user.count() == 0, f"{where}: mailbox not empty"

        assert await _once(config), where
        assert len(receiver.requests) == len(raws), f"{where}: the second once posted again"


async def test_courier_sends_the_real_message_with_utf8_headers(
    other_server: ServerBed, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A server that announces UTF8 (Courier) gets the UTF8 command: the message with raw
    UTF-8 headers arrives as stored, not Courier's "Cannot display Unicode content" notice,
    and the payload says the session was UTF8."""
    user = other_server.new_user()
    raw = (
        "From: Jürgen Groß <j@example.org>\nTo: inbox@example.org\nSubject: Grüße aus Köln\n"
        "Message-ID: <utf8-1@example.org>\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nHallo!\n"
    ).encode()
    user.deliver(raw)
    assert await _once(_config(other_server, user, receiver.url, tmp_path))
    [request] = receiver.requests
    payload = request.json()
    assert payload["subject"] == "Grüße aus Köln"
    delivered = _without_added_headers(other_server, base64.b64decode(payload["raw"]))
    assert delivered == raw.replace(b"\n", b"\r\n")
    client = Pop3Client(
        other_server.host, other_server.port, tls="starttls", ca_file=other_server.ca_file
    )
    await client.connect()
    utf8_offered = client.capabilities.utf8
    await client.close()
    assert payload.get("pop3_utf8", False) is utf8_offered
    assert other_server.name != "courier" or utf8_offered  # Courier offers it: the case above
    assert user.count() == 0


async def test_auth_the_server_does_not_offer_is_never_sent(
    other_server: ServerBed, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """`auth: plain` against a server without SASL PLAIN (mailutils has no SASL at all) fails
    before AUTH is sent, and says which methods the server offers; where PLAIN is offered it
    logs in."""
    user = other_server.new_user()
    client = Pop3Client(
        other_server.host, other_server.tls_port, tls="implicit", ca_file=other_server.ca_file
    )
    await client.connect()
    try:
        if "plain" in other_server.methods:
            assert await client.login(user.name, user.password, method="plain") == "plain"
            return
        with pytest.raises(Pop3AuthError) as info:
            await client.login(user.name, user.password, method="plain")
    finally:
        await client.close()
    message = str(info.value)
    assert "does not offer SASL PLAIN" in message
    assert "use another auth (user, apop offered)" in message
