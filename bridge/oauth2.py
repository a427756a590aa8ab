"""OAuth 2 access tokens for XOAUTH2 / OAUTHBEARER that stay fresh on their own.

:class:`OAuth2Client` fetches a token from the provider's token endpoint with aiohttp
(RFC 6749: ``client_credentials`` for Microsoft 365 app-only access, ``refresh_token`` for
Gmail and delegated access), caches it until shortly before ``expires_in`` runs out
(``refresh_before``, at most a quarter of the lifetime), and fetches a new one when asked
after that, or at once after the POP3 server refused the cached one (:meth:`invalidate`).

A provider may rotate the refresh token (return a new one with the access token). The new
one is written to ``data_dir/oauth2/<client>.json`` (mode 0600, atomically) and used from
then on, also after a restart, as long as the configured refresh token is the one the chain
started from: configuring a new one (after a new consent) starts over from it.

Every token and secret is registered with :mod:`bridge.redact` before it can reach a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from bridge import __version__
from bridge.config import OAuth2Config
from bridge.errors import OAuth2Error, OAuth2RefusedError, OAuth2UnavailableError
from bridge.redact import register, scrub, secret_forms
from bridge.secretfiles import SecretFiles

if TYPE_CHECKING:
    import aiohttp  # imported with the first token request: start-up does not pay for it

__all__ = ["OAuth2Client", "OAuth2Metrics"]

log = structlog.get_logger("bridge.oauth2")

_REFUSED = frozenset({"invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope"})
_TRANSIENT_STATUS = frozenset({408, 425, 429})


class OAuth2Metrics:
    """``bridge_oauth2_token_requests_total{client,outcome}`` and the token expiry gauge."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "bridge_oauth2_token_requests_total",
            "Token endpoint requests by OAuth 2 client and outcome: ok, refused (the provider "
            "refused the grant or client: fix the config), error (failed for now).",
            ["client", "outcome"],
            registry=registry,
        )
        self.expiry = Gauge(
            "bridge_oauth2_token_expiry_timestamp_seconds",
            "When the cached access token of an OAuth 2 client expires.",
            ["client"],
            registry=registry,
        )

    def prepare(self, client: str) -> None:
        """Create the client's series at 0."""
        for outcome in ("ok", "refused", "error"):
            self.requests.labels(client, outcome)

    def request(self, client: str, outcome: Literal["ok", "refused", "error"]) -> None:
        """Count one token request."""
        self.requests.labels(client, outcome).inc()


@dataclass(frozen=True)
class _Token:
    value: str
    expires_at: float
    refresh_at: float


class OAuth2Client:
    """One configured OAuth 2 client; share it between the mailboxes that use it."""

    def __init__(
        self,
        name: str,
        config: OAuth2Config,
        *,
        data_dir: Path,
        files: SecretFiles | None = None,
        metrics: OAuth2Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.config = config
        self.state_path = Path(data_dir) / "oauth2" / f"{name}.json"
        self._files = files or SecretFiles()
        self._metrics = metrics
        self._clock = clock
        self._token: _Token | None = None
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        if metrics is not None:
            metrics.prepare(name)

    def reconfigure(self, config: OAuth2Config) -> None:
        """Use a reloaded config; a cached token stays valid unless the client changed."""
        if (config.token_url, config.client_id, config.scopes, config.grant) != (
            self.config.token_url,
            self.config.client_id,
            self.config.scopes,
            self.config.grant,
        ):
            self._token = None
        self.config = config

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def invalidate(self, token: str) -> None:
        """The server refused ``token``: the next :meth:`token` fetches a new one."""
        if self._token is not None and self._token.value == token:
            self._token = None

    async def token(self) -> str:
        """A valid access token: the cached one, or a new one from the token endpoint.

        Raises :class:`OAuth2RefusedError` or :class:`OAuth2UnavailableError`.
        """
        async with self._lock:  # concurrent sessions of one client share a single fetch
            cached = self._token
            if cached is not None and self._clock() < cached.refresh_at:
                return cached.value
            self._token = await self._fetch()
            return self._token.value

    # ------------------------------------------------------------------ the request

    def _form(self) -> dict[str, str]:
        cfg = self.config
        form = {"grant_type": cfg.grant or "client_credentials", "client_id": cfg.client_id}
        secret = self._client_secret()
        if secret is not None:
            form["client_secret"] = secret
        if cfg.scopes:
            form["scope"] = cfg.scopes
        if cfg.grant == "refresh_token":
            form["refresh_token"] = self._refresh_token()
        return form

    def _client_secret(self) -> str | None:
        cfg = self.config
        if cfg.client_secret_file is not None:
            return self._files.read(
                cfg.client_secret_file, what=f"oauth2.{self.name}.client_secret_file"
            )
        return cfg.client_secret.get_secret_value() if cfg.client_secret else None

    def _configured_refresh_token(self) -> str:
        cfg = self.config
        if cfg.refresh_token_file is not None:
            return self._files.read(
                cfg.refresh_token_file, what=f"oauth2.{self.name}.refresh_token_file"
            )
        assert cfg.refresh_token is not None  # validated: the refresh_token grant has one
        return cfg.refresh_token.get_secret_value()

    def _refresh_token(self) -> str:
        configured = self._configured_refresh_token()
        state = self._load_state()
        if state.get("origin") == _digest(configured) and isinstance(
            state.get("refresh_token"), str
        ):
            rotated = str(state["refresh_token"])
            register(secret_forms(rotated))
            return rotated
        return configured

    async def _fetch(self) -> _Token:
        import aiohttp  # loaded on first use (see the imports at the top)

        form = self._form()
        session = self._get_session()
        began = self._clock()
        try:
            async with session.post(
                self.config.token_url,
                data=form,
                headers={"Accept": "application/json", "User-Agent": f"popbridge/{__version__}"},
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
                allow_redirects=False,
            ) as response:
                status = response.status
                raw = await response.content.read(64 * 1024)
        except TimeoutError:
            raise self._unavailable(f"no answer within {self.config.timeout:g}s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise self._unavailable(
                f"cannot reach the token endpoint: {type(exc).__name__}"
            ) from None
        body = _json(raw)
        if status != 200:
            raise self._failure(status, body)
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise self._unavailable(f"HTTP {status} without an access_token in the answer")
        register(secret_forms(access))
        lifetime = _seconds(body.get("expires_in"), default=3600.0)
        margin = min(self.config.refresh_before, lifetime / 4)
        token = _Token(access, began + lifetime, began + lifetime - margin)
        rotated = body.get("refresh_token")
        if self.config.grant == "refresh_token" and isinstance(rotated, str) and rotated:
            register(secret_forms(rotated))
            if rotated != form.get("refresh_token"):
                self._save_rotated(rotated)
        if self._metrics is not None:
            self._metrics.request(self.name, "ok")
            self._metrics.expiry.labels(self.name).set(token.expires_at)
        log.info("oauth2_token", client=self.name, expires_in=round(lifetime))
        return token

    def _unavailable(self, why: str) -> OAuth2Error:
        if self._metrics is not None:
            self._metrics.request(self.name, "error")
        return OAuth2UnavailableError(
            f"oauth2 client {self.name!r}: {why}; will try again at the next session",
            client=self.name,
        )

    def _failure(self, status: int, body: dict[str, Any]) -> OAuth2Error:
        code = str(body.get("error") or "")
        text = scrub(str(body.get("error_description") or ""))[:200]
        detail = f"HTTP {status}" + (f" {code}" if code else "") + (f": {text}" if text else "")
        if status >= 500 or status in _TRANSIENT_STATUS or (code and code not in _REFUSED):
            return self._unavailable(f"the token endpoint failed ({detail})")
        if self._metrics is not None:
            self._metrics.request(self.name, "refused")
        hint = {
            "invalid_grant": "the refresh token was revoked or expired: authorize again and "
            "put the new refresh token in the config",
            "invalid_client": "check client_id and client_secret",
            "unauthorized_client": "the app is not allowed this grant; check its registration",
            "invalid_scope": "check scope",
        }.get(code, "check the oauth2 settings")
        return OAuth2RefusedError(
            f"oauth2 client {self.name!r}: the provider refused the token request ({detail}); "
            f"{hint}",
            client=self.name,
        )

    # ------------------------------------------------------------------ rotated refresh tokens

    def _load_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save_rotated(self, refresh_token: str) -> None:
        state = {
            "origin": _digest(self._configured_refresh_token()),
            "refresh_token": refresh_token,
            "rotated_at": self._clock(),
        }
        directory = self.state_path.parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = directory / f".{self.state_path.name}.{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, json.dumps(state).encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.state_path)
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            log.error(
                "oauth2_refresh_token_not_saved",
                client=self.name,
                path=str(self.state_path),
                error=exc.strerror or str(exc),
                detail="the rotated refresh token is used until the process stops",
            )
            return
        log.info("oauth2_refresh_token_rotated", client=self.name, path=str(self.state_path))

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(), trust_env=True
            )
        return self._session


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def _json(raw: bytes) -> dict[str, Any]:
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        data = json.loads(raw)
        if isinstance(data, dict):
            return data
    return {}


def _seconds(value: object, *, default: float) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return seconds if seconds > 0 else default
