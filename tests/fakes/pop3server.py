"""The fake POP3 server for tests: :mod:`bridge.devserver`, plus its pytest fixture.

The server ships in the package (the demo uses it); tests import it from here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from bridge.devserver import FakeMessage, FakePop3Server, Fault, crlf, stuff

__all__ = ["FakeMessage", "FakePop3Server", "Fault", "crlf", "fake_pop3", "stuff"]


@pytest_asyncio.fixture
async def fake_pop3() -> AsyncIterator[FakePop3Server]:
    """A started fake POP3 server with no messages (user ``alice``, password ``secret``)."""
    server = FakePop3Server()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
