"""R1 on the real Dovecot behind a loopback proxy that limits the download to a steady
20 KB/s (a slow link): a 200 KB message takes ~10 s, well above min_transfer_rate, but the
keep-alive NOOP sent meanwhile times out and closes the connection; every session."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from bridge.app import App
from bridge.config import Config
from tests.dovecot import Dovecot, Pop3User
from tests.integration.kit import config_dict, make_message
from tests.receiver import WebhookReceiver


class SlowLink:
    def __init__(self, host: str, port: int, rate: int) -> None:
        self.target, self.rate, self.port = (host, port), rate, 0

    async def start(self) -> SlowLink:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._server.close()

    async def _serve(self, cr, cw) -> None:
        sr, sw = await asyncio.open_connection(*self.target)

        async def pipe(r, w, limit):
            with contextlib.suppress(Exception):
                while data := await r.read(limit or 65536):
                    w.write(data)
                    await w.drain()
                    if limit:
                        await asyncio.sleep(len(data) / self.rate)
            w.close()

        await asyncio.gather(pipe(cr, sw, None), pipe(sr, cw, 2048))


async def test_slow_steady_link_dovecot(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    pop3_user.deliver(make_message(1))
    pop3_user.deliver(make_message(2, size=200_000))
    pop3_user.deliver(make_message(3))
    link = await SlowLink(dovecot.host, dovecot.port, 20_000).start()
    try:
        config = config_dict(
            dovecot,
            pop3_user,
            receiver.url,
            tmp_path / "d",
            port=link.port,
            tls="none",
            mailbox={"command_timeout": 3, "min_transfer_rate": 2048},
        )
        for attempt in range(2):
            app = App(Config.from_dict(config, env={}))
            try:
                result = await app.session(app.mailboxes["inbox"], asyncio.Event())
            finally:
                await app.close()
            print(attempt, result, [r.json()["subject"] for r in receiver.requests])
    finally:
        await link.stop()
    assert result is not None
    assert result.committed
    assert pop3_user.count() == 0
