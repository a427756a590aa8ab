"""OAuth 2 end to end: the bridge, a real Dovecot with its ``oauth2`` passdb, and a small
aiohttp provider (token + introspection endpoints) issuing tokens that live seconds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.app import App
from bridge.config import Config
from tests.dovecot import free_port
from tests.integration.kit import config_dict, make_message
from tests.oauth2_server import OAuthDovecot, TokenServer
from tests.receiver import WebhookReceiver

pytestmark = pytest.mark.dovecot

CLIENT_ID = "popbridge-test-app"
CLIENT_SECRET = "client-secret-for-tests-0123"


@pytest.fixture(scope="module")
def token_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def oauth_dovecot(token_port: int) -> Iterator[OAuthDovecot]:
    server = OAuthDovecot(f"http://127.0.0.1:{token_port}/introspect")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def provider(token_port: int) -> AsyncIterator[TokenServer]:
    async with TokenServer(port=token_port, clients={CLIENT_ID: CLIENT_SECRET}) as server:
        yield server


def _config(
    dovecot: OAuthDovecot, user: Any, url: str, data_dir: Path, oauth2: dict[str, Any] | None
) -> dict[str, Any]:
    config = config_dict(dovecot, user, url, data_dir)
    box = config["mailboxes"][0]
    del box["password"]
    box["login_backoff_auth"] = 1
    if oauth2 is not None:
        box["oauth2"] = {
            "token_url": f"http://127.0.0.1:{dovecot_token_port(dovecot)}/token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            **oauth2,
        }
    return config


def dovecot_token_port(dovecot: OAuthDovecot) -> int:
    return int(dovecot.introspection_url.rsplit(":", 1)[1].split("/")[0])


@contextlib.asynccontextmanager
async def running(config: dict[str, Any]) -> AsyncIterator[App]:
    """The service in this process (``App.run``) with its HTTP endpoint, until the block ends."""
    app = App(Config.from_dict(config, env={}))
    await app.start_http()
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        yield app
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await app.close()


def _sample(app: App, name: str, **labels: str) -> float:
    return app.metrics.registry.get_sample_value(name, labels) or 0.0


async def _get(app: App, path: str) -> tuple[int, dict[str, Any]]:
    assert app.server is not None
    url = f"http://127.0.0.1:{app.server.port}{path}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, json.loads(await response.text())


async def test_the_service_keeps_delivering_past_several_token_lifetimes_with_rotation(
    oauth_dovecot: OAuthDovecot, provider: TokenServer, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """refresh_token grant, tokens living 2 s, refresh tokens rotated at each use: a mail a
    second for 9 s all arrive; the rotated refresh token is saved 0600 and a restart, whose
    configured refresh token is long dead, goes on with it."""
    provider.lifetime = 2.0
    provider.rotate = True
    user = oauth_dovecot.new_user()
    first_refresh = provider.new_refresh_token(user.name)
    config = _config(
        oauth_dovecot, user, receiver.url, tmp_path / "data", {"refresh_token": first_refresh}
    )
    async with running(config) as app:
        for i in range(9):
            user.deliver(make_message(i))
            await asyncio.sleep(1.0)
        await receiver.wait_for(9, within=20)
        assert (
            _sample(app, "bridge_pop3_sessions_total", mailbox="inbox", outcome="auth_error") == 0
        )
    assert len(provider.issued) >= 4  # several lifetimes, several tokens
    assert first_refresh not in provider.refresh_tokens  # rotated away
    saved = tmp_path / "data" / "oauth2" / "mailbox-inbox.json"
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    (current,) = provider.refresh_tokens
    assert json.loads(saved.read_text())["refresh_token"] == current
    async with running(config) as app:
        user.deliver(make_message(100))
        await receiver.wait_for(10, within=20)
    assert user.count() == 0


async def test_client_credentials_for_app_only_access(
    oauth_dovecot: OAuthDovecot, provider: TokenServer, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """The Microsoft 365 app-only shape: client_credentials with a .default scope, XOAUTH2,
    the username being the mailbox address; a shared client referenced by name."""
    user = oauth_dovecot.new_user()
    provider.app_users[CLIENT_ID] = user.name
    config = _config(oauth_dovecot, user, receiver.url, tmp_path / "data", None)
    config["oauth2"] = {
        "m365": {
            "token_url": f"{provider.url}/token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scope": "https://outlook.office365.com/.default",
        }
    }
    config["mailboxes"][0].update(oauth2="m365", auth="xoauth2")
    user.deliver(make_message(1))
    async with running(config):
        await receiver.wait_for(1, within=20)
    assert provider.token_requests[0]["grant_type"] == "client_credentials"
    assert provider.token_requests[0]["scope"] == "https://outlook.office365.com/.default"


async def test_a_token_refused_by_the_server_is_refreshed_once_and_the_login_retried(
    oauth_dovecot: OAuthDovecot, provider: TokenServer, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """The cached token is still in date but the server refuses it (-ERR [AUTH]): the bridge
    fetches a new one and logs in with it in the same session."""
    provider.lifetime = 300.0
    user = oauth_dovecot.new_user()
    refresh = provider.new_refresh_token(user.name)
    config = _config(
        oauth_dovecot, user, receiver.url, tmp_path / "data", {"refresh_token": refresh}
    )
    async with running(config) as app:
        user.deliver(make_message(1))
        await receiver.wait_for(1, within=20)
        assert len(provider.issued) == 1
        provider.revoke_access_tokens()
        user.deliver(make_message(2))
        await receiver.wait_for(2, within=20)
        assert len(provider.issued) == 2
        assert (
            _sample(app, "bridge_pop3_sessions_total", mailbox="inbox", outcome="auth_error") == 0
        )
    assert any(not active for _, active in provider.introspections)


async def test_a_revoked_refresh_token_is_a_clear_error_a_metric_and_a_failing_mailbox(
    oauth_dovecot: OAuthDovecot, provider: TokenServer, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """invalid_grant: the session fails as auth_error with a message saying what to do, the
    refused counter moves, /readyz?mailbox= fails while the replica stays ready."""
    user = oauth_dovecot.new_user()
    refresh = provider.new_refresh_token(user.name)
    provider.revoke_refresh_token(refresh)
    config = _config(
        oauth_dovecot, user, receiver.url, tmp_path / "data", {"refresh_token": refresh}
    )
    user.deliver(make_message(1))
    async with running(config) as app:
        for _ in range(100):
            if _sample(app, "bridge_pop3_sessions_total", mailbox="inbox", outcome="auth_error"):
                break
            await asyncio.sleep(0.1)
        labels = {"client": "mailbox-inbox", "outcome": "refused"}
        assert _sample(app, "bridge_oauth2_token_requests_total", **labels) >= 1
        status, body = await _get(app, "/readyz?mailbox=inbox")
        assert status == 503
        assert "invalid_grant" in body["reason"]
        assert "authorize again" in body["reason"]
        assert refresh not in json.dumps(body)
        status, body = await _get(app, "/readyz")
        assert status == 200
        assert "inbox" in body["failing"]
    assert receiver.requests == []
    assert user.count() == 1


async def test_token_file_is_read_again_when_it_changes(
    oauth_dovecot: OAuthDovecot, provider: TokenServer, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A sidecar rewrites token_file, then the old token is revoked: the next session logs
    in with the new one (the file is read again because it changed)."""
    provider.lifetime = 300.0
    user = oauth_dovecot.new_user()
    provider.app_users[CLIENT_ID] = user.name

    async def fresh_token() -> str:
        form = {"grant_type": "client_credentials", "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET}  # fmt: skip
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{provider.url}/token", data=form) as response,
        ):
            return str((await response.json())["access_token"])

    token_file = tmp_path / "token"
    token_file.write_text(await fresh_token())
    config = _config(oauth_dovecot, user, receiver.url, tmp_path / "data", None)
    config["mailboxes"][0].update(token_file=str(token_file), auth="xoauth2")
    async with running(config) as app:
        user.deliver(make_message(1))
        await receiver.wait_for(1, within=20)
        old = token_file.read_text()
        new = await fresh_token()
        token_file.write_text(new)
        provider.revoke_access_tokens(keep={new})
        user.deliver(make_message(2))
        await receiver.wait_for(2, within=20)
        assert (
            _sample(app, "bridge_pop3_sessions_total", mailbox="inbox", outcome="auth_error") == 0
        )
    assert (old, False) not in provider.introspections[-1:]
    assert provider.introspections[-1] == (new, True)
