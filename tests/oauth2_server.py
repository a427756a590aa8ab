"""A small OAuth 2 provider for tests: a token endpoint and an RFC 7662 introspection endpoint.

Real aiohttp on loopback. Tokens live ``lifetime`` seconds (a few, so a test runs past
several of them); the introspection endpoint, which Dovecot's ``oauth2`` passdb asks at each
login, answers ``active: false`` for an expired or revoked token. Grants:

- ``refresh_token``: ``refresh_tokens`` maps a refresh token to the user it acts for; with
  ``rotate=True`` each use returns a new refresh token and the used one stops working;
- ``client_credentials``: ``app_users`` maps a client id to the mailbox it may read (as an
  app-only Microsoft 365 registration with POP.AccessAsApp does).

:class:`OAuthDovecot` is the test Dovecot with an ``oauth2`` passdb for XOAUTH2 and
OAUTHBEARER pointing at the introspection endpoint (Dovecot 2.3, PasswordDatabase/oauth2).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from tests.dovecot import Dovecot

__all__ = ["OAuthDovecot", "TokenServer"]


@dataclass
class _Access:
    user: str
    expires_at: float


@dataclass
class TokenServer:
    """The provider; start with ``async with``; ``url`` is the base URL."""

    lifetime: float = 3.0
    clients: dict[str, str] = field(default_factory=dict)
    """client_id -> client_secret."""
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    """refresh token -> user."""
    app_users: dict[str, str] = field(default_factory=dict)
    """client_id -> user, for client_credentials."""
    rotate: bool = False
    issued: list[str] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    introspections: list[tuple[str, bool]] = field(default_factory=list)
    _access: dict[str, _Access] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> TokenServer:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/introspect", self._introspect)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def revoke_refresh_token(self, token: str) -> None:
        """The user withdrew consent: the refresh token stops working."""
        self.refresh_tokens.pop(token, None)

    def revoke_access_tokens(self, keep: set[str] | frozenset[str] = frozenset()) -> None:
        """Every access token issued so far (but ``keep``) is refused from now on."""
        self._access = {k: v for k, v in self._access.items() if k in keep}

    def new_refresh_token(self, user: str) -> str:
        token = "rt-" + secrets.token_urlsafe(16)
        self.refresh_tokens[token] = user
        return token

    @staticmethod
    def _error(code: str, status: int = 400) -> web.Response:
        return web.json_response(
            {"error": code, "error_description": f"test provider says {code}"}, status=status
        )

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form)
        client = form.get("client_id", "")
        if client not in self.clients or self.clients[client] != form.get("client_secret"):
            return self._error("invalid_client", 401)
        answer: dict[str, object] = {"token_type": "Bearer", "expires_in": self.lifetime}
        grant = form.get("grant_type")
        if grant == "refresh_token":
            refresh = form.get("refresh_token", "")
            user = self.refresh_tokens.get(refresh)
            if user is None:
                return self._error("invalid_grant")
            if self.rotate:
                del self.refresh_tokens[refresh]
                answer["refresh_token"] = self.new_refresh_token(user)
        elif grant == "client_credentials":
            user = self.app_users.get(client)
            if user is None:
                return self._error("unauthorized_client")
        else:
            return self._error("unsupported_grant_type")
        access = "at-" + secrets.token_urlsafe(24)
        self._access[access] = _Access(user, time.monotonic() + self.lifetime)
        self.issued.append(access)
        answer["access_token"] = access
        return web.json_response(answer)

    async def _introspect(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = str(form.get("token", ""))
        access = self._access.get(token)
        active = access is not None and time.monotonic() < access.expires_at
        self.introspections.append((token, active))
        if not active or access is None:
            return web.json_response({"active": False})
        return web.json_response({"active": True, "username": access.user})


class OAuthDovecot(Dovecot):
    """The test Dovecot with XOAUTH2 and OAUTHBEARER checked by ``introspection_url``."""

    def __init__(self, introspection_url: str, root: Path | None = None) -> None:
        super().__init__(root)
        self.introspection_url = introspection_url

    def _write_config(self, cert: Path, key: Path) -> None:
        super()._write_config(cert, key)
        ext = self.root / "dovecot-oauth2.conf.ext"
        ext.write_text(
            f"introspection_mode = post\n"
            f"introspection_url = {self.introspection_url}\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n"
            "force_introspection = yes\n"
        )
        ext.chmod(0o644)
        text = self.config_path.read_text()
        text = text.replace(
            "auth_mechanisms = plain login apop",
            "auth_mechanisms = plain login apop xoauth2 oauthbearer",
        )
        oauth_passdb = (
            f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
            f"  args = {ext}\n}}\n"
        )
        text = text.replace("passdb {", oauth_passdb + "passdb {", 1)
        self.config_path.write_text(text)
