"""The OAuth 2 client against the test provider (real aiohttp on loopback), clock injected."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge import redact
from bridge.config import OAuth2Config
from bridge.errors import OAuth2RefusedError, OAuth2UnavailableError
from bridge.oauth2 import OAuth2Client
from tests.oauth2_server import TokenServer

CLIENT_ID = "app"
CLIENT_SECRET = "unit-client-secret-0123"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def provider() -> AsyncIterator[TokenServer]:
    async with TokenServer(clients={CLIENT_ID: CLIENT_SECRET}, lifetime=3600) as server:
        yield server


def _client(provider: TokenServer, tmp_path: Path, clock: Clock, **cfg: Any) -> OAuth2Client:
    config = OAuth2Config.model_validate(
        {
            "token_url": f"{provider.url}/token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            **cfg,
        }
    )
    return OAuth2Client("c", config, data_dir=tmp_path, clock=clock)


async def test_a_token_is_cached_until_shortly_before_it_expires(
    provider: TokenServer, tmp_path: Path
) -> None:
    """expires_in 3600, refresh_before 300: the same token until 3300 s, then a new one."""
    clock = Clock()
    provider.app_users[CLIENT_ID] = "u"
    client = _client(provider, tmp_path, clock)
    try:
        first = await client.token()
        clock.now += 3299
        assert await client.token() == first
        clock.now += 2
        assert await client.token() != first
        assert len(provider.token_requests) == 2
    finally:
        await client.close()


async def test_short_lived_tokens_are_refreshed_at_three_quarters_of_their_life(
    provider: TokenServer, tmp_path: Path
) -> None:
    """A 4 s token (as in tests) is renewed after 3 s, not used until it is dead."""
    clock = Clock()
    provider.app_users[CLIENT_ID] = "u"
    provider.lifetime = 4
    client = _client(provider, tmp_path, clock)
    try:
        first = await client.token()
        clock.now += 2.9
        assert await client.token() == first
        clock.now += 0.2
        assert await client.token() != first
    finally:
        await client.close()


async def test_invalidate_forces_a_new_token(provider: TokenServer, tmp_path: Path) -> None:
    """After the server refused the cached token, the next call fetches another."""
    provider.app_users[CLIENT_ID] = "u"
    client = _client(provider, tmp_path, Clock())
    try:
        first = await client.token()
        client.invalidate("some other token")
        assert await client.token() == first
        client.invalidate(first)
        assert await client.token() != first
    finally:
        await client.close()


async def test_a_revoked_refresh_token_is_refused_with_a_clear_message(
    provider: TokenServer, tmp_path: Path
) -> None:
    """invalid_grant names the client, says what to do and shows no secret."""
    refresh = provider.new_refresh_token("u")
    provider.revoke_refresh_token(refresh)
    client = _client(provider, tmp_path, Clock(), refresh_token=refresh)
    try:
        with pytest.raises(OAuth2RefusedError) as info:
            await client.token()
    finally:
        await client.close()
    text = str(info.value)
    assert "oauth2 client 'c'" in text
    assert "invalid_grant" in text
    assert "authorize again" in text
    assert refresh not in text
    assert CLIENT_SECRET not in text


async def test_a_failing_endpoint_is_transient(tmp_path: Path) -> None:
    """Nothing listens: OAuth2UnavailableError, worth retrying later."""
    async with TokenServer() as gone:
        url = gone.url
    config = OAuth2Config.model_validate(
        {"token_url": f"{url}/token", "client_id": "a", "client_secret": "b-123456"}
    )
    client = OAuth2Client("c", config, data_dir=tmp_path)
    try:
        with pytest.raises(OAuth2UnavailableError) as info:
            await client.token()
    finally:
        await client.close()
    assert info.value.transient


async def test_a_rotated_refresh_token_is_saved_0600_and_used_until_the_config_changes(
    provider: TokenServer, tmp_path: Path
) -> None:
    """The new refresh token lands in data_dir/oauth2/c.json; a new client (a restart) uses
    it; configuring a different refresh token starts over from that one."""
    provider.rotate = True
    first = provider.new_refresh_token("u")
    client = _client(provider, tmp_path, Clock(), refresh_token=first)
    await client.token()
    await client.close()
    saved = tmp_path / "oauth2" / "c.json"
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    (second,) = provider.refresh_tokens
    assert json.loads(saved.read_text())["refresh_token"] == second
    assert redact.scrub(f"x {second} y") == "x [redacted] y"
    restarted = _client(provider, tmp_path, Clock(), refresh_token=first)
    await restarted.token()
    await restarted.close()
    assert provider.token_requests[-1]["refresh_token"] == second
    new_consent = provider.new_refresh_token("u")
    reconfigured = _client(provider, tmp_path, Clock(), refresh_token=new_consent)
    await reconfigured.token()
    await reconfigured.close()
    assert provider.token_requests[-1]["refresh_token"] == new_consent


def test_config_rules() -> None:
    """Grant inferred; each grant needs its secret; http only to loopback."""
    base = {"token_url": "https://login.example.org/token", "client_id": "a"}
    assert OAuth2Config.model_validate({**base, "refresh_token": "r-1234"}).grant == "refresh_token"
    assert (
        OAuth2Config.model_validate({**base, "client_secret": "s-1234"}).grant
        == "client_credentials"
    )
    with pytest.raises(ValueError, match="needs client_secret"):
        OAuth2Config.model_validate(base)
    with pytest.raises(ValueError, match="must be https"):
        OAuth2Config.model_validate(
            {**base, "token_url": "http://login.example.org/t", "client_secret": "s-1234"}
        )


def test_mailbox_oauth2_references_and_conflicts() -> None:
    """A name must exist under oauth2; oauth2 with a password is an error naming the key."""
    from bridge.config import Config
    from bridge.errors import ConfigError

    def config(box: dict[str, Any]) -> dict[str, Any]:
        return {
            "data_dir": "/var/lib/bridge",
            "webhooks": {"main": {"url": "https://h.example.org/", "secret": SECRET}},
            "oauth2": {
                "m365": {
                    "token_url": "https://login.example.org/t",
                    "client_id": "a",
                    "client_secret": "s-123456",
                }
            },
            "mailboxes": [
                {
                    "name": "a",
                    "host": "pop.example.org",
                    "username": "u@example.org",
                    "webhooks": ["main"],
                    **box,
                }
            ],
        }

    Config.from_dict(config({"oauth2": "m365"}), env={})
    with pytest.raises(ConfigError) as info:
        Config.from_dict(config({"oauth2": "m356"}), env={})
    assert info.value.problems == [
        "mailboxes[0].oauth2: no oauth2 client named 'm356'; did you mean 'm365'?"
    ]
    with pytest.raises(ConfigError) as info:
        Config.from_dict(config({"oauth2": "m365", "password": "pw-123456"}), env={})
    assert info.value.problems == [
        "mailboxes[0].oauth2: oauth2 fetches the token itself: remove password and token"
    ]
