"""Webhook delivery: Standard Webhooks signing, the retry policy, breakers and the client.

Typical use by the poller::

    async with WebhookClient() as client:
        outcome = await client.deliver(target, webhook_id(mailbox, uidl), body,
                                       reference_body=lambda: reference)
        if outcome.acked: ...
"""

from bridge.webhook.breaker import BreakerState, CircuitBreaker
from bridge.webhook.client import (
    OnBreakerChange,
    OnRequest,
    OnTooLarge,
    ReferenceBody,
    WebhookClient,
)
from bridge.webhook.outcome import DeliveryKind, DeliveryOutcome
from bridge.webhook.policy import Verdict, backoff_delay, classify, parse_retry_after, status_class
from bridge.webhook.signing import decode_secret, sign, webhook_id
from bridge.webhook.target import BasicAuth, TooLargePolicy, WebhookTarget

__all__ = [
    "BasicAuth",
    "BreakerState",
    "CircuitBreaker",
    "DeliveryKind",
    "DeliveryOutcome",
    "OnBreakerChange",
    "OnRequest",
    "OnTooLarge",
    "ReferenceBody",
    "TooLargePolicy",
    "Verdict",
    "WebhookClient",
    "WebhookTarget",
    "backoff_delay",
    "classify",
    "decode_secret",
    "parse_retry_after",
    "sign",
    "status_class",
    "webhook_id",
]
