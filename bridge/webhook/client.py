"""The webhook client: one pooled aiohttp session, signed POSTs, retries, a breaker per target.

:meth:`WebhookClient.deliver` never raises for a delivery failure: it returns a
:class:`~bridge.webhook.outcome.DeliveryOutcome` and the poller decides what to do
(ack and delete, retry later, park). Time, sleeping and randomness are injected so
tests never wait for real.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING

import structlog

from bridge import __version__
from bridge.errors import AttachmentStoreError
from bridge.webhook.breaker import BreakerState, CircuitBreaker
from bridge.webhook.outcome import DeliveryKind, DeliveryOutcome
from bridge.webhook.policy import Verdict, backoff_delay, classify, parse_retry_after
from bridge.webhook.request import _Attempt, _HttpPoster
from bridge.webhook.target import WebhookTarget

if TYPE_CHECKING:
    # aiohttp is imported on the first delivery, not with this module: `popbridge once` over
    # idle mailboxes and `popbridge check` never pay its ~100-300 ms import.
    import aiohttp
    from yarl import URL

__all__ = ["OnBreakerChange", "OnRequest", "OnTooLarge", "ReferenceBody", "WebhookClient"]

OnRequest = Callable[[str, str, float], None]
"""``on_request(target_name, status_class, seconds)`` after every HTTP attempt.

``status_class`` is one of ``"2xx" "3xx" "4xx" "5xx" "timeout" "error"``."""

OnBreakerChange = Callable[[str, BreakerState], None]
"""``on_breaker_change(target_name, new_state)`` whenever a target's breaker changes state."""

OnTooLarge = Callable[[str, str], None]
"""``on_too_large(target_name, action)`` each time a body was too large for a target (a 413,
or over its ``max_payload_bytes``); ``action`` is ``"reference"``, ``"parked"`` or
``"rejected"``."""

ReferenceBody = Callable[[], bytes | Awaitable[bytes]]
"""Gives the smaller body to send instead (attachments by reference); may be a coroutine
function. It may raise :class:`~bridge.errors.AttachmentStoreError` (then: TRANSIENT)."""

log = structlog.get_logger("bridge.webhook")


class _Call:
    """The running tally of one :meth:`WebhookClient.deliver` call."""

    def __init__(
        self, target: WebhookTarget, webhook_id: str, start: float, clock: Callable[[], float]
    ) -> None:
        self.target = target
        self.webhook_id = webhook_id
        self.start = start
        self.clock = clock
        self.requests = 0
        self.used_reference = False

    def finish(
        self,
        kind: DeliveryKind,
        attempt: _Attempt,
        error: str | None,
        retry_after: float | None = None,
        *,
        retry_after_from_receiver: bool = False,
        parked: bool = False,
    ) -> DeliveryOutcome:
        """Build the outcome of the call, ending with ``attempt``."""
        return DeliveryOutcome(
            retry_after_from_receiver=retry_after_from_receiver,
            kind=kind,
            target=self.target.name,
            webhook_id=self.webhook_id,
            status=attempt.status,
            attempts=self.requests,
            error=error,
            duration=self.clock() - self.start,
            retry_after=retry_after,
            used_reference=self.used_reference,
            parked=parked,
        )


class WebhookClient(_HttpPoster):
    """Delivers signed webhook POSTs over one pooled :class:`aiohttp.ClientSession`.

    Use as ``async with WebhookClient() as client:`` or call :meth:`close`. The
    session is created on first use inside the running loop, trusts proxy settings
    from the environment, verifies TLS (``ssl_context`` replaces the system trust
    store, e.g. for a private CA), keeps no cookies and never follows redirects.
    """

    def __init__(
        self,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        on_request: OnRequest | None = None,
        on_breaker_change: OnBreakerChange | None = None,
        on_too_large: OnTooLarge | None = None,
        ssl_context: ssl.SSLContext | None = None,
        pool_size: int = 100,
        user_agent: str = f"popbridge/{__version__}",
    ) -> None:
        """Configure the client; nothing is opened until the first delivery.

        ``clock`` (monotonic) measures durations and drives the breakers,
        ``wall_clock`` gives ``webhook-timestamp`` and dates in ``Retry-After``,
        ``sleep`` waits between retries, ``rng`` draws the jitter. Callbacks must
        not raise.
        """
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng if rng is not None else random.Random()
        self._on_request = on_request
        self._on_breaker_change = on_breaker_change
        self._on_too_large = on_too_large
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._pool_size = pool_size
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[str, tuple[URL | None, aiohttp.BasicAuth | None]] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._gone: set[str] = set()  # targets that answered 410 Gone: no more requests
        self._closed = False

    async def __aenter__(self) -> WebhookClient:
        """Return self; the session opens lazily."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the session."""
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session and its pooled connections; the client cannot be reused."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ breakers

    def breaker_state(self, target_name: str) -> BreakerState:
        """The breaker state of a target (CLOSED for a target never delivered to)."""
        breaker = self._breakers.get(target_name)
        return breaker.state if breaker is not None else BreakerState.CLOSED

    def is_open(self, target_name: str) -> bool:
        """True when a delivery to this target now would be refused without a request
        (its breaker is open, or it answered 410 Gone)."""
        if target_name in self._gone:
            return True
        breaker = self._breakers.get(target_name)
        return breaker is not None and breaker.is_open()

    def is_gone(self, target_name: str) -> bool:
        """True once the target answered 410 Gone: nothing more is sent to it by this process."""
        return target_name in self._gone

    def retry_in(self, target_name: str) -> float:
        """Seconds until the target's breaker lets a probe through (0 when closed; infinite
        for a target that answered 410 Gone)."""
        if target_name in self._gone:
            return math.inf
        breaker = self._breakers.get(target_name)
        return breaker.retry_in() if breaker is not None else 0.0

    def _mark_gone(self, target: WebhookTarget) -> None:
        """410 Gone (Standard Webhooks: the endpoint is disabled): stop sending to it."""
        if target.name in self._gone:
            return
        self._gone.add(target.name)
        log.warning(
            "webhook_target_gone",
            target=target.name,
            detail="the receiver answered 410 Gone: no more deliveries to this target until "
            f"popbridge restarts; fix webhooks.{target.name}.url or remove the target",
        )
        if self._on_breaker_change is not None:
            self._on_breaker_change(target.name, BreakerState.OPEN)  # shown as open

    def _breaker(self, target: WebhookTarget) -> CircuitBreaker:
        breaker = self._breakers.get(target.name)
        if breaker is None:
            notify = self._on_breaker_change
            down_since: list[float] = []  # set while the target is down (open or probing)

            def on_change(state: BreakerState, name: str = target.name) -> None:
                # One warning when the target goes down and one when it is back; the probes
                # in between (half-open, open again) are not news.
                if state is BreakerState.OPEN and not down_since:
                    down_since.append(self._clock())
                    log.warning(
                        "webhook_target_down",
                        target=name,
                        consecutive_failures=self._breakers[name].consecutive_failures,
                        next_probe_in=round(self._breakers[name].retry_in(), 3),
                        detail="circuit breaker open: no deliveries to this target until a "
                        "trial request succeeds",
                    )
                elif state is BreakerState.CLOSED and down_since:
                    log.warning(
                        "webhook_target_recovered",
                        target=name,
                        down_seconds=round(self._clock() - down_since.pop(), 3),
                        detail="circuit breaker closed: deliveries to this target resume",
                    )
                if notify is not None:
                    notify(name, state)

            breaker = CircuitBreaker(
                threshold=target.breaker_threshold,
                cooldown=target.breaker_cooldown,
                cooldown_max=target.breaker_cooldown_max,
                clock=self._clock,
                on_change=on_change,
            )
            self._breakers[target.name] = breaker
        return breaker

    # ------------------------------------------------------------------ delivery

    async def deliver(
        self,
        target: WebhookTarget,
        webhook_id: str,
        body: bytes,
        *,
        reference_body: ReferenceBody | None = None,
    ) -> DeliveryOutcome:
        """POST ``body`` to ``target`` until it is acknowledged, rejected or attempts run out.

        2xx -> ACKED. 408, 425, 429, 5xx, timeouts and connection errors are
        retried after exponential backoff with full jitter, or after the
        receiver's ``Retry-After`` when that is within ``target.backoff_max``
        (a longer one ends the call at once), up to ``target.max_attempts``
        requests -> TRANSIENT. 413, or a body over ``target.max_payload_bytes``
        (then without a request) -> what ``target.on_too_large`` says: one resend of
        ``reference_body()`` (``"reference"``; REJECTED when there is none), or REJECTED
        with ``parked`` (``"park"``), or REJECTED (``"reject"``); a reference body that is
        still too large ends REJECTED with ``parked`` unless the policy is reject, and one
        that cannot be made (:class:`~bridge.errors.AttachmentStoreError`) ends TRANSIENT.
        410 Gone -> REJECTED, and the target gets no more requests from this client
        (later calls: CIRCUIT_OPEN). Other 4xx and 3xx -> REJECTED. An open breaker ->
        CIRCUIT_OPEN without a request; a breaker that opens during the call ends it as
        TRANSIENT. Only an
        exception from ``reference_body`` other than AttachmentStoreError escapes.
        """
        if self._closed:
            raise RuntimeError("this WebhookClient is closed")
        start = self._clock()
        if target.name in self._gone:
            return DeliveryOutcome(
                kind=DeliveryKind.CIRCUIT_OPEN,
                target=target.name,
                webhook_id=webhook_id,
                error="the receiver answered 410 Gone earlier: not sent (restart popbridge "
                "once the target's url is fixed)",
            )
        breaker = self._breaker(target)
        if not breaker.allow():
            wait = breaker.retry_in()
            return DeliveryOutcome(
                kind=DeliveryKind.CIRCUIT_OPEN,
                target=target.name,
                webhook_id=webhook_id,
                error=(
                    f"circuit breaker open after {breaker.consecutive_failures} consecutive "
                    f"transient failures; next probe in {wait:.1f}s"
                ),
                retry_after=wait,
            )
        call = _Call(target, webhook_id, start, self._clock)
        probing = breaker.state is BreakerState.HALF_OPEN
        payload = body
        transient_failures = 0
        try:
            limit = target.max_payload_bytes
            if limit is not None and len(payload) > limit:
                over = _Attempt(
                    None, f"body of {len(payload)} bytes over max_payload_bytes={limit}"
                )
                decided = await self._too_large(call, over, reference_body)
                if isinstance(decided, DeliveryOutcome):
                    return decided
                payload = decided
            while True:
                call.requests += 1
                attempt = await self._post(target, webhook_id, payload)
                verdict = (
                    classify(attempt.status) if attempt.status is not None else Verdict.TRANSIENT
                )
                if verdict is not Verdict.TRANSIENT:
                    breaker.record_success()  # the receiver is up and answered
                    probing = False
                if verdict is Verdict.ACKED:
                    return call.finish(DeliveryKind.ACKED, attempt, None)
                if verdict is Verdict.TOO_LARGE:
                    decided = await self._too_large(call, attempt, reference_body)
                    if isinstance(decided, DeliveryOutcome):
                        return decided
                    payload = decided
                    continue
                if verdict is Verdict.REJECTED:
                    if attempt.status == 410:
                        self._mark_gone(target)
                    return call.finish(DeliveryKind.REJECTED, attempt, attempt.detail)

                breaker.record_failure()
                probing = False
                transient_failures += 1
                retry_after = parse_retry_after(
                    attempt.retry_after, now=self._wall_clock(), cap=target.retry_after_max
                )
                if transient_failures >= target.max_attempts or (
                    retry_after is not None and retry_after > target.backoff_max
                ):
                    return call.finish(
                        DeliveryKind.TRANSIENT,
                        attempt,
                        attempt.detail,
                        retry_after,
                        retry_after_from_receiver=retry_after is not None,
                    )
                if breaker.is_open():
                    return call.finish(
                        DeliveryKind.TRANSIENT, attempt, attempt.detail, breaker.retry_in()
                    )
                if retry_after is None:
                    retry_after = backoff_delay(
                        transient_failures, target.backoff_initial, target.backoff_max, self._rng
                    )
                await self._sleep(retry_after)
                if not breaker.allow():
                    return call.finish(
                        DeliveryKind.TRANSIENT, attempt, attempt.detail, breaker.retry_in()
                    )
                probing = breaker.state is BreakerState.HALF_OPEN
        finally:
            if probing:  # cancelled or failed mid-probe: let the next caller probe
                breaker.release()

    async def _too_large(
        self, call: _Call, attempt: _Attempt, reference_body: ReferenceBody | None
    ) -> bytes | DeliveryOutcome:
        """Apply ``on_too_large``: the reference body to send next, or how the call ends."""
        target = call.target
        policy = target.on_too_large
        if call.used_reference:
            parked = policy != "reject"
            self._count_too_large(target.name, "parked" if parked else "rejected")
            error = f"{attempt.detail}: too large even without attachment contents"
            return call.finish(DeliveryKind.REJECTED, attempt, error, parked=parked)
        if policy == "park":
            self._count_too_large(target.name, "parked")
            error = f"{attempt.detail}: too large; left on the server (on_too_large: park)"
            return call.finish(DeliveryKind.REJECTED, attempt, error, parked=True)
        if policy == "reject" or reference_body is None:
            self._count_too_large(target.name, "rejected")
            return call.finish(DeliveryKind.REJECTED, attempt, f"{attempt.detail}: too large")
        try:
            made = reference_body()
            reference = await made if inspect.isawaitable(made) else made
        except AttachmentStoreError as exc:
            error = f"{attempt.detail}: too large, and attachments could not be stored: {exc}"
            return call.finish(DeliveryKind.TRANSIENT, attempt, error)
        assert isinstance(reference, bytes)
        call.used_reference = True
        limit = target.max_payload_bytes
        if limit is not None and len(reference) > limit:
            detail = f"body by reference of {len(reference)} bytes over max_payload_bytes={limit}"
            return await self._too_large(call, _Attempt(attempt.status, detail), reference_body)
        self._count_too_large(target.name, "reference")
        return reference

    def _count_too_large(self, target_name: str, action: str) -> None:
        if self._on_too_large is not None:
            self._on_too_large(target_name, action)
