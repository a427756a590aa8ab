"""One signed HTTP request to a target, and what it answered: the client's aiohttp layer.

aiohttp is imported on the first request, not with this module (see
:mod:`bridge.webhook.client`). Error texts never contain the URL or a secret of the target.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge.redact import scrub, scrub_values
from bridge.webhook.policy import status_class
from bridge.webhook.signing import sign
from bridge.webhook.target import WebhookTarget

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

_ERROR_BODY_BYTES = 512
_ERROR_TEXT_CHARS = 200


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One HTTP request's result: a status, or the reason there was none."""

    status: int | None
    detail: str
    timed_out: bool = False
    retry_after: str | None = None


class _HttpPoster:
    """Posts one signed request over a pooled session; the base of the webhook client,
    which sets the state declared here."""

    _clock: Callable[[], float]
    _wall_clock: Callable[[], float]
    _on_request: Callable[[str, str, float], None] | None
    _ssl: ssl.SSLContext | bool
    _pool_size: int
    _user_agent: str
    _session: aiohttp.ClientSession | None
    _proxies: dict[str, tuple[URL | None, aiohttp.BasicAuth | None]]

    async def _post(self, target: WebhookTarget, webhook_id: str, payload: bytes) -> _Attempt:
        """Send one signed request and report its status class to ``on_request``."""
        import aiohttp  # loaded on first use (see the imports at the top)

        headers = self._headers(target, webhook_id, payload)
        session = self._get_session()
        proxy, proxy_auth = self._proxy_for(target.url)
        began = self._clock()
        try:
            body: bytes | AsyncIterator[memoryview] = payload
            if len(payload) > _STREAM_ABOVE:
                # Written a slice at a time with back-pressure: handed over whole, the part
                # the socket cannot take at once is copied into the transport's buffer.
                body = _slices(payload)
                headers["Content-Length"] = str(len(payload))
            async with session.post(
                target.url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=target.timeout),
                allow_redirects=False,
                proxy=proxy,
                proxy_auth=proxy_auth,
                ssl=target.ssl_context if target.ssl_context is not None else True,
            ) as response:
                snippet = await response.content.read(_ERROR_BODY_BYTES)
                cut = not response.content.at_eof()
                result = _Attempt(
                    status=response.status,
                    detail=_describe_status(response.status, snippet, target, cut=cut),
                    retry_after=response.headers.get("Retry-After"),
                )
        except TimeoutError:
            result = _Attempt(None, f"timed out after {target.timeout:g}s", timed_out=True)
        except aiohttp.ClientError as exc:
            result = _Attempt(None, _describe_exception(exc))
        except OSError as exc:
            result = _Attempt(None, f"connection error: {exc.strerror or type(exc).__name__}")
        if self._on_request is not None:
            kind = status_class(result.status, timed_out=result.timed_out)
            self._on_request(target.name, kind, self._clock() - began)
        return result

    def _headers(self, target: WebhookTarget, webhook_id: str, payload: bytes) -> dict[str, str]:
        timestamp = int(self._wall_clock())
        headers = {"User-Agent": self._user_agent}
        headers.update(target.headers)
        headers["Content-Type"] = "application/json"
        headers["webhook-id"] = webhook_id
        headers["webhook-timestamp"] = str(timestamp)
        headers["webhook-signature"] = sign(target.secrets, webhook_id, timestamp, payload)
        if target.bearer_token is not None:
            headers["Authorization"] = f"Bearer {target.bearer_token}"
        elif target.basic_auth is not None:
            pair = f"{target.basic_auth.user}:{target.basic_auth.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return headers

    def _proxy_for(self, url: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
        """The proxy for ``url`` from the environment (``HTTPS_PROXY``, ``NO_PROXY``...).

        Resolved once per URL: aiohttp's ``trust_env`` would look the environment (and
        ``~/.netrc``) up in a worker thread on every request, a third of the cost of a post.
        """
        if url not in self._proxies:
            from aiohttp.helpers import get_env_proxy_for_url
            from yarl import URL

            try:
                self._proxies[url] = get_env_proxy_for_url(URL(url))
            except LookupError:
                self._proxies[url] = (None, None)
        return self._proxies[url]

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=self._pool_size, ssl=self._ssl)
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session


_STREAM_ABOVE = 1 << 20
"""Bodies larger than this (bytes) are streamed in slices instead of written in one go."""


async def _slices(data: bytes, size: int = 1 << 18) -> AsyncIterator[memoryview]:
    """``data`` as consecutive memoryview slices of ``size`` bytes (no copies)."""
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield view[start : start + size]


def _describe_status(
    status: int, snippet: bytes, target: WebhookTarget, *, cut: bool = False
) -> str:
    """``"HTTP 503: <start of the body>"`` with every secret of the target scrubbed.

    Scrubbed before whitespace is folded (a header value may hold spaces) and, when the
    body was longer than the part read (``cut``), also a tail that is the start of a secret.
    """
    text = snippet.decode("utf-8", "replace")
    text = scrub(scrub_values(text, target.sensitive_values(), cut=cut), cut=cut)
    text = " ".join(text.split())
    if len(text) > _ERROR_TEXT_CHARS:
        text = text[:_ERROR_TEXT_CHARS] + "..."
    return f"HTTP {status}: {text}" if text else f"HTTP {status}"


def _describe_exception(exc: aiohttp.ClientError) -> str:
    """A short reason for a failed request that never includes the URL (it may hold a token)."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate verification failed"
    if isinstance(exc, aiohttp.ClientConnectorSSLError | aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return f"cannot connect: {reason}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the receiver closed the connection without answering"
    if isinstance(exc, aiohttp.ClientOSError):
        return f"connection error: {exc.strerror or type(exc).__name__}"
    return f"request failed: {type(exc).__name__}"
