"""WebhookClient against the real aiohttp receiver: headers, signatures, status handling,
retries, Retry-After, 413 reference mode, redirects, timeouts, a dead receiver and the breaker.

Sleeping and the monotonic clock are injected: backoff waits are recorded, not slept.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import random
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import structlog.testing
import trustme
from standardwebhooks.webhooks import Webhook

from bridge import __version__
from bridge.errors import AttachmentStoreError, WebhookRejectedError, WebhookTransientError
from bridge.webhook import (
    BasicAuth,
    BreakerState,
    DeliveryKind,
    WebhookClient,
    WebhookTarget,
    webhook_id,
)
from tests.receiver import RecordedRequest, Reply, WebhookReceiver

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"previous-secret-32-bytes-long!!!").decode()
BODY = b'{"subject": "Hello", "text": "caf\\u00e9"}'
WID = webhook_id("support", "00000001abc")


@dataclass
class Harness:
    """A client with a hand-driven monotonic clock; sleep() records and advances it."""

    now: float = 5000.0
    sleeps: list[float] = field(default_factory=list)
    requests: list[tuple[str, str, float]] = field(default_factory=list)
    breaker_changes: list[tuple[str, BreakerState]] = field(default_factory=list)
    client: WebhookClient | None = None

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def make(self, **kwargs: object) -> WebhookClient:
        self.client = WebhookClient(
            sleep=self.sleep,
            clock=self.clock,
            rng=random.Random(1),
            on_request=lambda t, c, d: self.requests.append((t, c, d)),
            on_breaker_change=lambda t, s: self.breaker_changes.append((t, s)),
            **kwargs,  # type: ignore[arg-type]
        )
        return self.client


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    h.make()
    yield h
    assert h.client is not None
    await h.client.close()


def target(url: str, **kwargs: object) -> WebhookTarget:
    settings: dict[str, object] = {
        "name": "hooks",
        "secrets": (SECRET,),
        "timeout": 5.0,
        "max_attempts": 3,
    }
    settings.update(kwargs)
    return WebhookTarget(url=url, **settings)  # type: ignore[arg-type]


def verified(request: RecordedRequest, secret: str = SECRET) -> None:
    """Raise unless the standardwebhooks reference accepts the request's signature."""
    Webhook(secret).verify(request.body, dict(request.headers), json_parse=False)


async def deliver(h: Harness, t: WebhookTarget, body: bytes = BODY, **kwargs: object):  # type: ignore[no-untyped-def]
    assert h.client is not None
    return await h.client.deliver(t, WID, body, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- acknowledgement


async def test_2xx_acks_with_standard_webhooks_headers(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """One POST with JSON content type, our user agent, webhook-* headers and a valid signature."""
    receiver.reply(204)
    before = int(time.time())
    outcome = await deliver(harness, target(receiver.url))
    assert outcome.kind is DeliveryKind.ACKED
    assert outcome.acked
    assert (outcome.status, outcome.attempts, outcome.error) == (204, 1, None)
    assert outcome.as_error() is None
    (request,) = receiver.requests
    assert request.method == "POST"
    assert request.body == BODY
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"popbridge/{__version__}"
    assert request.headers["webhook-id"] == WID
    assert before <= int(request.headers["webhook-timestamp"]) <= int(time.time())
    assert "Authorization" not in request.headers
    assert "Cookie" not in request.headers
    verified(request)
    assert harness.sleeps == []


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
async def test_every_2xx_is_an_ack(
    harness: Harness, receiver: WebhookReceiver, status: int
) -> None:
    """Any 2xx status acknowledges the message on the first attempt."""
    receiver.reply(status)
    outcome = await deliver(harness, target(receiver.url))
    assert (outcome.kind, outcome.status, outcome.attempts) == (DeliveryKind.ACKED, status, 1)


async def test_rotation_signs_with_both_secrets(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """With two secrets configured, a receiver holding either one verifies the request."""
    await deliver(harness, target(receiver.url, secrets=(SECRET, OLD_SECRET)))
    (request,) = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    verified(request, SECRET)
    verified(request, OLD_SECRET)


async def test_static_headers_and_bearer_token(harness: Harness, receiver: WebhookReceiver) -> None:
    """A target's static headers and bearer token are sent; they cannot replace webhook-*."""
    t = target(
        receiver.url, headers={"X-Tenant": "acme", "User-Agent": "custom"}, bearer_token="tok-123"
    )
    await deliver(harness, t)
    (request,) = receiver.requests
    assert request.headers["X-Tenant"] == "acme"
    assert request.headers["User-Agent"] == "custom"
    assert request.headers["Authorization"] == "Bearer tok-123"
    verified(request)


async def test_basic_auth(harness: Harness, receiver: WebhookReceiver) -> None:
    """Basic credentials arrive as an RFC 7617 Authorization header."""
    await deliver(harness, target(receiver.url, basic_auth=BasicAuth("bridge", "pa:ss")))
    (request,) = receiver.requests
    scheme, _, encoded = request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded) == b"bridge:pa:ss"


# ---------------------------------------------------------------------- transient failures


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
async def test_transient_statuses_retry_then_give_up(
    harness: Harness, receiver: WebhookReceiver, status: int
) -> None:
    """408/425/429/5xx are retried up to max_attempts with jittered exponential waits."""
    receiver.reply(Reply(status, body=b"busy"))
    outcome = await deliver(harness, target(receiver.url, max_attempts=3, backoff_initial=0.5))
    assert outcome.kind is DeliveryKind.TRANSIENT
    assert (outcome.status, outcome.attempts) == (status, 3)
    assert outcome.error == f"HTTP {status}: busy"
    assert len(receiver.requests) == 3
    assert len(harness.sleeps) == 2
    assert 0 <= harness.sleeps[0] <= 0.5
    assert 0 <= harness.sleeps[1] <= 1.0
    assert outcome.duration == pytest.approx(sum(harness.sleeps))
    assert isinstance(outcome.as_error(), WebhookTransientError)


async def test_retry_keeps_the_webhook_id_and_body_and_resigns(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """500, 503, then 200: acked on the third try; every request carries the same id and body."""
    receiver.sequence([500, 503, 200])
    outcome = await deliver(harness, target(receiver.url))
    assert (outcome.kind, outcome.attempts, outcome.status) == (DeliveryKind.ACKED, 3, 200)
    assert receiver.webhook_ids() == [WID, WID, WID]
    assert {r.body for r in receiver.requests} == {BODY}
    for request in receiver.requests:
        verified(request)


async def test_retry_after_seconds_is_honoured(harness: Harness, receiver: WebhookReceiver) -> None:
    """A 429 with Retry-After: 7 waits exactly 7 s (not the jittered backoff) before retrying."""
    receiver.sequence([Reply(429, retry_after=7), 200])
    outcome = await deliver(harness, target(receiver.url, backoff_max=30))
    assert outcome.kind is DeliveryKind.ACKED
    assert harness.sleeps == [7.0]


async def test_retry_after_http_date_is_honoured(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """Retry-After as an HTTP date 20 s ahead makes the client wait about 20 s."""
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    receiver.sequence([Reply(503, retry_after=when), 200])
    outcome = await deliver(harness, target(receiver.url, backoff_max=30))
    assert outcome.kind is DeliveryKind.ACKED
    (slept,) = harness.sleeps
    assert 18.0 <= slept <= 20.0


async def test_long_retry_after_ends_the_call_for_the_poller(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """A Retry-After beyond backoff_max is not slept in the session: TRANSIENT, capped hint."""
    receiver.reply(Reply(503, retry_after=999999))
    outcome = await deliver(harness, target(receiver.url, backoff_max=30, retry_after_max=3600))
    assert (outcome.kind, outcome.attempts) == (DeliveryKind.TRANSIENT, 1)
    assert outcome.retry_after == 3600.0
    assert outcome.retry_after_from_receiver  # the poller schedules the message by it
    assert harness.sleeps == []


async def test_timeout_is_transient(harness: Harness, receiver: WebhookReceiver) -> None:
    """A receiver slower than the target's timeout gives TRANSIENT with no status."""
    receiver.reply(Reply(200, delay=3))
    started = time.monotonic()
    outcome = await deliver(harness, target(receiver.url, timeout=0.2, max_attempts=1))
    assert time.monotonic() - started < 2
    assert (outcome.kind, outcome.status) == (DeliveryKind.TRANSIENT, None)
    assert outcome.error == "timed out after 0.2s"
    assert harness.requests[0][1] == "timeout"


async def test_receiver_down_is_transient(harness: Harness, receiver: WebhookReceiver) -> None:
    """Connection refused is transient, retried, and labelled 'error' for metrics."""
    await receiver.stop()
    outcome = await deliver(harness, target(receiver.url, max_attempts=2))
    assert (outcome.kind, outcome.status, outcome.attempts) == (DeliveryKind.TRANSIENT, None, 2)
    assert outcome.error is not None
    assert outcome.error.startswith("cannot connect")
    assert [c for _, c, _ in harness.requests] == ["error", "error"]


async def test_receiver_dropping_the_connection_is_transient(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """A receiver that closes the socket without answering is retried like any outage."""
    receiver.sequence([Reply(drop=True), 200])
    outcome = await deliver(harness, target(receiver.url))
    assert (outcome.kind, outcome.attempts) == (DeliveryKind.ACKED, 2)


async def test_receiver_back_after_restart(harness: Harness, receiver: WebhookReceiver) -> None:
    """Down then up on the same port: the next delivery goes through the pooled client."""
    await deliver(harness, target(receiver.url))
    await receiver.stop()
    down = await deliver(harness, target(receiver.url, max_attempts=1))
    assert down.kind is DeliveryKind.TRANSIENT
    await receiver.start()
    up = await deliver(harness, target(receiver.url, max_attempts=1))
    assert up.kind is DeliveryKind.ACKED


# ---------------------------------------------------------------------- rejections and 413


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 410, 422])
async def test_other_4xx_reject_at_once(
    harness: Harness, receiver: WebhookReceiver, status: int
) -> None:
    """Other 4xx reject after one request, without retry."""
    receiver.reply(Reply(status, body=b'{"error": "no such inbox"}'))
    outcome = await deliver(harness, target(receiver.url))
    assert (outcome.kind, outcome.status, outcome.attempts) == (DeliveryKind.REJECTED, status, 1)
    assert outcome.error == f'HTTP {status}: {{"error": "no such inbox"}}'
    assert harness.sleeps == []
    assert isinstance(outcome.as_error(), WebhookRejectedError)


async def test_410_gone_rejects_and_stops_sending_to_the_target(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """410 Gone (Standard Webhooks: endpoint disabled) rejects the message, and nothing more
    is sent to that target: later deliveries come back CIRCUIT_OPEN without a request, the
    poller sees the target as open (so it fetches nothing for it), one warning is logged, and
    other targets are unaffected."""
    assert harness.client is not None
    receiver.decide(lambda r: 410 if r.path == "/hook" else 200)
    gone, other = target(receiver.url), target(receiver.url.replace("/hook", "/other"), name="b")
    with structlog.testing.capture_logs() as logs:
        first = await deliver(harness, gone)
        later = [await deliver(harness, gone) for _ in range(3)]
    assert (first.kind, first.status, first.attempts) == (DeliveryKind.REJECTED, 410, 1)
    assert [(o.kind, o.attempts) for o in later] == [(DeliveryKind.CIRCUIT_OPEN, 0)] * 3
    assert "410 Gone" in (later[0].error or "")
    assert [r.path for r in receiver.requests] == ["/hook"]
    assert harness.client.is_gone("hooks")
    assert harness.client.is_open("hooks")
    assert harness.breaker_changes == [("hooks", BreakerState.OPEN)]  # the metric shows it
    assert [e["event"] for e in logs] == ["webhook_target_gone"]
    assert logs[0]["log_level"] == "warning"
    assert (await deliver(harness, other)).kind is DeliveryKind.ACKED
    assert not harness.client.is_open("b")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_rejected_not_followed(
    harness: Harness, receiver: WebhookReceiver, status: int
) -> None:
    """A 3xx is a rejection; the Location is never requested."""
    receiver.decide(
        lambda r: Reply(status, headers={"Location": "/elsewhere"}) if r.path == "/hook" else 200
    )
    outcome = await deliver(harness, target(receiver.url))
    assert (outcome.kind, outcome.status, outcome.attempts) == (DeliveryKind.REJECTED, status, 1)
    assert [r.path for r in receiver.requests] == ["/hook"]


async def test_413_resends_once_in_reference_mode(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """413 makes one resend with reference_body(); its 2xx acks with used_reference set."""
    reference = b'{"attachments": [{"omitted": "receiver answered 413"}]}'
    calls: list[int] = []

    def make_reference() -> bytes:
        calls.append(1)
        return reference

    receiver.sequence([413, 200])
    outcome = await deliver(harness, target(receiver.url), reference_body=make_reference)
    assert (outcome.kind, outcome.attempts, outcome.used_reference) == (
        DeliveryKind.ACKED,
        2,
        True,
    )
    assert [r.body for r in receiver.requests] == [BODY, reference]
    assert receiver.webhook_ids() == [WID, WID]
    verified(receiver.requests[1])
    assert calls == [1]
    assert harness.sleeps == []


async def test_413_twice_rejects(harness: Harness, receiver: WebhookReceiver) -> None:
    """A 413 to the reference body as well is a rejection; no third request."""
    receiver.reply(413)
    outcome = await deliver(harness, target(receiver.url), reference_body=lambda: b"{}")
    assert (outcome.kind, outcome.status, outcome.attempts) == (DeliveryKind.REJECTED, 413, 2)
    assert outcome.error is not None
    assert "even without attachment contents" in outcome.error


async def test_413_without_reference_rejects(harness: Harness, receiver: WebhookReceiver) -> None:
    """Without a reference body there is nothing smaller to send: rejected at once."""
    receiver.reply(413)
    outcome = await deliver(harness, target(receiver.url))
    assert (outcome.kind, outcome.attempts) == (DeliveryKind.REJECTED, 1)


async def test_reference_body_is_retried_on_transient_failure(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """After a 413, transient retries keep sending the reference body."""
    receiver.sequence([413, 503, 200])
    outcome = await deliver(harness, target(receiver.url), reference_body=lambda: b"{}")
    assert outcome.kind is DeliveryKind.ACKED
    assert [r.body for r in receiver.requests] == [BODY, b"{}", b"{}"]


async def test_413_with_on_too_large_park_keeps_the_message_and_counts_it(
    receiver: WebhookReceiver,
) -> None:
    """on_too_large: park -> REJECTED with parked set after one request; counted as parked."""
    counted: list[tuple[str, str]] = []
    h = Harness()
    client = h.make(on_too_large=lambda t, a: counted.append((t, a)))
    receiver.reply(413)
    try:
        outcome = await client.deliver(
            target(receiver.url, on_too_large="park"), WID, BODY, reference_body=lambda: b"{}"
        )
    finally:
        await client.close()
    assert (outcome.kind, outcome.parked, outcome.attempts) == (DeliveryKind.REJECTED, True, 1)
    assert [r.body for r in receiver.requests] == [BODY]
    assert counted == [("hooks", "parked")]
    assert outcome.error is not None
    assert "left on the server" in outcome.error


async def test_413_with_on_too_large_reject_is_a_plain_rejection(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """on_too_large: reject -> REJECTED without parked (the reject policy applies)."""
    receiver.reply(413)
    outcome = await deliver(
        harness, target(receiver.url, on_too_large="reject"), reference_body=lambda: b"{}"
    )
    assert (outcome.kind, outcome.parked, outcome.attempts) == (DeliveryKind.REJECTED, False, 1)


async def test_reference_too_large_as_well_is_parked(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """A 413 to the reference body too: REJECTED with parked (never dropped), no third try."""
    receiver.reply(413)
    outcome = await deliver(harness, target(receiver.url), reference_body=lambda: b"{}")
    assert (outcome.kind, outcome.parked, outcome.attempts) == (DeliveryKind.REJECTED, True, 2)


async def test_async_reference_body_is_awaited(harness: Harness, receiver: WebhookReceiver) -> None:
    """reference_body may be a coroutine function (the claim check writes to a store)."""

    async def make_reference() -> bytes:
        await asyncio.sleep(0)
        return b'{"by": "reference"}'

    receiver.sequence([413, 200])
    outcome = await deliver(harness, target(receiver.url), reference_body=make_reference)
    assert (outcome.kind, outcome.used_reference) == (DeliveryKind.ACKED, True)
    assert [r.body for r in receiver.requests] == [BODY, b'{"by": "reference"}']


async def test_store_failure_while_making_the_reference_is_transient(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """An AttachmentStoreError from reference_body -> TRANSIENT: the message stays, retried."""

    async def broken() -> bytes:
        raise AttachmentStoreError("attachment store directory /x: disk full", store="dir")

    receiver.reply(413)
    outcome = await deliver(harness, target(receiver.url), reference_body=broken)
    assert (outcome.kind, outcome.status, outcome.attempts) == (DeliveryKind.TRANSIENT, 413, 1)
    assert outcome.error is not None
    assert "disk full" in outcome.error
    assert harness.client is not None
    assert harness.client.breaker_state("hooks") is BreakerState.CLOSED


async def test_max_payload_bytes_sends_by_reference_up_front(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """A body over max_payload_bytes is never sent: the reference body goes first, and acks."""
    outcome = await deliver(
        harness,
        target(receiver.url, max_payload_bytes=len(BODY) - 1),
        reference_body=lambda: b"{}",
    )
    assert (outcome.kind, outcome.attempts, outcome.used_reference) == (
        DeliveryKind.ACKED,
        1,
        True,
    )
    assert [r.body for r in receiver.requests] == [b"{}"]


async def test_max_payload_bytes_with_park_sends_nothing(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """Over max_payload_bytes under on_too_large: park -> parked without any request."""
    outcome = await deliver(
        harness, target(receiver.url, max_payload_bytes=10, on_too_large="park")
    )
    assert (outcome.kind, outcome.parked, outcome.attempts, outcome.status) == (
        DeliveryKind.REJECTED,
        True,
        0,
        None,
    )
    assert outcome.error is not None
    assert "over max_payload_bytes=10" in outcome.error
    assert receiver.requests == []


async def test_reference_still_over_max_payload_bytes_is_parked_unsent(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """A reference body over max_payload_bytes as well is parked; nothing is sent."""
    outcome = await deliver(
        harness, target(receiver.url, max_payload_bytes=10), reference_body=lambda: b"x" * 11
    )
    assert (outcome.kind, outcome.parked, outcome.attempts) == (DeliveryKind.REJECTED, True, 0)
    assert receiver.requests == []


# ---------------------------------------------------------------------- secrets


async def test_errors_never_show_secrets(harness: Harness, receiver: WebhookReceiver) -> None:
    """A receiver echoing our headers in its error body has the secrets scrubbed from error."""

    def echo(request: RecordedRequest) -> Reply:
        text = f"{request.headers['Authorization']} {SECRET}"
        return Reply(400, body=text.encode())

    receiver.decide(echo)
    t = target(receiver.url, bearer_token="very-secret-token")
    outcome = await deliver(harness, t)
    assert outcome.error is not None
    assert "very-secret-token" not in outcome.error
    assert SECRET.removeprefix("whsec_") not in outcome.error
    assert "[redacted]" in outcome.error
    assert "very-secret-token" not in str(outcome.as_error())


async def test_url_credentials_stay_out_of_connection_errors(harness: Harness) -> None:
    """A URL carrying a token in its query is never quoted in the error text."""
    t = target("http://127.0.0.1:9/hook?token=s3cr3t", max_attempts=1)
    outcome = await deliver(harness, t)
    assert outcome.kind is DeliveryKind.TRANSIENT
    assert outcome.error is not None
    assert "s3cr3t" not in outcome.error


# ---------------------------------------------------------------------- circuit breaker


async def test_breaker_opens_then_probes_and_closes(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """After N transient failures no request is made (CIRCUIT_OPEN) until the cool-down; then
    one probe goes and its 2xx closes the breaker."""
    t = target(receiver.url, max_attempts=1, breaker_threshold=2, breaker_cooldown=60)
    assert harness.client is not None
    receiver.reply(503)
    for _ in range(2):
        assert (await deliver(harness, t)).kind is DeliveryKind.TRANSIENT
    assert harness.client.breaker_state("hooks") is BreakerState.OPEN
    assert harness.client.is_open("hooks")
    blocked = await deliver(harness, t)
    assert (blocked.kind, blocked.attempts) == (DeliveryKind.CIRCUIT_OPEN, 0)
    assert blocked.retry_after == 60.0
    assert len(receiver.requests) == 2
    harness.now += 30
    assert harness.client.retry_in("hooks") == 30.0
    assert (await deliver(harness, t)).kind is DeliveryKind.CIRCUIT_OPEN
    harness.now += 30
    assert not harness.client.is_open("hooks")
    receiver.reply(200)
    probe = await deliver(harness, t)
    assert probe.kind is DeliveryKind.ACKED
    assert harness.client.breaker_state("hooks") is BreakerState.CLOSED
    assert harness.breaker_changes == [
        ("hooks", BreakerState.OPEN),
        ("hooks", BreakerState.HALF_OPEN),
        ("hooks", BreakerState.CLOSED),
    ]
    assert len(receiver.requests) == 3


async def test_failed_probe_reopens_with_a_longer_cool_down(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """A probe that fails sends only one request and doubles the wait before the next probe."""
    t = target(receiver.url, max_attempts=3, breaker_threshold=1, breaker_cooldown=10)
    assert harness.client is not None
    receiver.reply(500)
    first = await deliver(harness, t)
    assert (first.kind, first.attempts, first.retry_after) == (DeliveryKind.TRANSIENT, 1, 10.0)
    harness.now += 10
    probe = await deliver(harness, t)
    assert (probe.kind, probe.attempts) == (DeliveryKind.TRANSIENT, 1)
    assert harness.client.retry_in("hooks") == 20.0
    assert len(receiver.requests) == 2


async def test_breaker_opening_mid_call_stops_retrying(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """With a threshold below max_attempts, the call ends when the breaker opens."""
    t = target(receiver.url, max_attempts=10, breaker_threshold=3, breaker_cooldown=45)
    receiver.reply(502)
    outcome = await deliver(harness, t)
    assert (outcome.kind, outcome.attempts, outcome.retry_after) == (
        DeliveryKind.TRANSIENT,
        3,
        45.0,
    )
    # A breaker wait is the target's state, not a per-message pause asked for by the receiver.
    assert not outcome.retry_after_from_receiver


async def test_rejections_and_acks_reset_the_failure_count(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """A 4xx means the receiver is up: it does not count towards opening the breaker."""
    t = target(receiver.url, max_attempts=1, breaker_threshold=2)
    assert harness.client is not None
    receiver.sequence([503, 400, 503, 200, 503])
    for _ in range(5):
        await deliver(harness, t)
    assert harness.client.breaker_state("hooks") is BreakerState.CLOSED


async def test_cancelled_probe_frees_the_breaker(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """A probe cancelled mid-flight (e.g. shutdown) lets the next delivery probe."""
    t = target(receiver.url, max_attempts=1, breaker_threshold=1, breaker_cooldown=5)
    assert harness.client is not None
    receiver.reply(503)
    await deliver(harness, t)
    harness.now += 5
    receiver.reply(Reply(200, delay=10))
    task = asyncio.create_task(deliver(harness, t))
    await receiver.wait_for(2)
    assert harness.client.is_open("hooks")  # the probe is out
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    receiver.reply(200)
    assert (await deliver(harness, t)).kind is DeliveryKind.ACKED


async def test_breakers_are_per_target(harness: Harness, receiver: WebhookReceiver) -> None:
    """One failing target does not stop another."""
    bad = WebhookTarget(
        name="bad",
        url="http://127.0.0.1:9/x",
        secrets=(SECRET,),
        max_attempts=1,
        breaker_threshold=1,
    )
    good = target(receiver.url)
    await deliver(harness, bad)
    assert harness.client is not None
    assert harness.client.is_open("bad")
    assert not harness.client.is_open("hooks")
    assert (await deliver(harness, good)).kind is DeliveryKind.ACKED


# ---------------------------------------------------------------------- pooling, metrics, TLS


async def test_one_pooled_connection_for_sequential_deliveries(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """Sequential deliveries reuse one keep-alive connection (same client port)."""
    for _ in range(5):
        await deliver(harness, target(receiver.url))
    assert len({r.peer for r in receiver.requests}) == 1


async def test_concurrent_deliveries(harness: Harness, receiver: WebhookReceiver) -> None:
    """Fifty concurrent deliveries through one client are all acknowledged."""
    assert harness.client is not None
    t = target(receiver.url)
    ids = [webhook_id("mb", str(i)) for i in range(50)]
    outcomes = await asyncio.gather(*(harness.client.deliver(t, i, BODY) for i in ids))
    assert all(o.acked for o in outcomes)
    assert receiver.distinct_webhook_ids() == set(ids)


async def test_on_request_reports_status_classes(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """The metrics hook sees one (target, status class, seconds) per HTTP attempt."""
    receiver.sequence([503, 302])
    await deliver(harness, target(receiver.url))
    receiver.sequence([404, 200])
    await deliver(harness, target(receiver.url))
    await deliver(harness, target(receiver.url))
    assert [(t, c) for t, c, _ in harness.requests] == [
        ("hooks", "5xx"),
        ("hooks", "3xx"),
        ("hooks", "4xx"),
        ("hooks", "2xx"),
    ]
    assert all(d >= 0 for _, _, d in harness.requests)


async def test_tls_is_verified() -> None:
    """HTTPS to an untrusted certificate fails (transient); trusting its CA makes it work."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with WebhookReceiver(ssl_context=server_ctx) as tls_receiver:
        assert tls_receiver.url.startswith("https://")
        h = Harness()
        untrusting = h.make()
        try:
            outcome = await deliver(h, target(tls_receiver.url, max_attempts=1))
        finally:
            await untrusting.close()
        assert outcome.kind is DeliveryKind.TRANSIENT
        assert outcome.error == "TLS certificate verification failed"
        trusting = h.make(ssl_context=client_ctx)
        try:
            assert (await deliver(h, target(tls_receiver.url))).kind is DeliveryKind.ACKED
        finally:
            await trusting.close()
        assert len(tls_receiver.requests) == 1


async def test_closed_client_refuses(harness: Harness, receiver: WebhookReceiver) -> None:
    """Delivering through a closed client is a programming error, not a silent failure."""
    assert harness.client is not None
    await harness.client.close()
    with pytest.raises(RuntimeError, match="closed"):
        await deliver(harness, target(receiver.url))


# ---------------------------------------------------------------------- proxies


async def test_proxy_from_the_environment_is_used_and_no_proxy_honoured(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY routes requests through the proxy (here the receiver, which sees the absolute
    URL); a host listed in NO_PROXY goes direct."""
    monkeypatch.setenv("HTTP_PROXY", receiver.url.rsplit("/", 1)[0])
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    client = WebhookClient()
    try:
        via_proxy = await client.deliver(target("http://bridge-test.invalid/hook"), WID, BODY)
        direct = await client.deliver(target(receiver.url), WID, BODY)
    finally:
        await client.close()
    assert via_proxy.acked
    assert direct.acked
    assert receiver.requests[0].headers["Host"] == "bridge-test.invalid"
    assert receiver.requests[1].headers["Host"].startswith("127.0.0.1")


async def test_large_body_is_streamed_with_its_length_and_signature(
    harness: Harness, receiver: WebhookReceiver
) -> None:
    """A body over 1 MiB goes out in slices (bounded memory) yet arrives byte-identical,
    with Content-Length (not chunked) and a signature the reference library accepts."""
    big = b'{"blob":"' + bytes(range(65, 91)) * 150_000 + b'"}'
    outcome = await deliver(harness, target(receiver.url), big)
    assert outcome.acked
    request = receiver.requests[0]
    assert request.body == big
    assert request.headers["Content-Length"] == str(len(big))
    assert "Transfer-Encoding" not in request.headers
    verified(request)
