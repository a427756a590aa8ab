"""Shared fixtures: the real Dovecot test bed, the webhook receiver and the fake POP3 server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dovecot import Dovecot, DovecotUnavailable, Pop3User
from tests.fakes.pop3server import fake_pop3  # noqa: F401
from tests.pop3servers import SERVERS, ServerBed, ServerUnavailable
from tests.receiver import receiver  # noqa: F401
from tests.s3server import s3_bucket, s3_server  # noqa: F401


def _running(server: Dovecot) -> Iterator[Dovecot]:
    """Start ``server`` for the fixture's scope; a test that needs it fails (never skips)."""
    try:
        server.start()
    except DovecotUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One throwaway Dovecot for the whole run."""
    yield from _running(Dovecot())


@pytest.fixture(scope="session")
def dovecot_u() -> Iterator[Dovecot]:
    """A Dovecot whose UIDLs are plain IMAP UIDs (`pop3_uidl_format = %u`): a rebuilt UID list
    gives old UIDLs to other messages."""
    yield from _running(Dovecot(uidl_format="%u"))


@pytest.fixture(scope="session", params=sorted(SERVERS))
def other_server(request: pytest.FixtureRequest) -> Iterator[ServerBed]:
    """Each of the other real POP3 servers (GNU mailutils, Courier) once for the whole run;
    a server that cannot start fails the test that needs it, with the reason (never skips)."""
    server = SERVERS[request.param]()
    try:
        server.start()
    except ServerUnavailable as exc:
        server.stop()
        pytest.fail(f"{request.param}: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pop3_user(dovecot: Dovecot) -> Pop3User:
    """A fresh, empty mailbox on the session's Dovecot."""
    return dovecot.new_user()


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared real-world mail corpus (POPBRIDGE_CORPUS); tests that need it skip when unset."""
    value = os.environ.get("POPBRIDGE_CORPUS")
    if not value:
        pytest.skip("POPBRIDGE_CORPUS is not set (CI sets it to ../shared/corpus)")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"POPBRIDGE_CORPUS={value} is not a directory", pytrace=False)
    return path
