"""Webhook delivery: Standard Webhooks signing, the retry policy, breakers and the client.

Typical use by the poller::

    async with WebhookClient() as client:
        outcome = await client.deliver(target, webhook_id(mailbox, uidl), body,
                                       reference_body=lambda: reference)
        if outcome.acked: ...

The names are imported on first use (PEP 562), so ``bridge.webhook.signing``, which the
config needs to check secrets, does not pull in aiohttp: ``popbridge validate`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge.webhook.breaker import BreakerState, CircuitBreaker
    from bridge.webhook.client import (
        OnBreakerChange,
        OnRequest,
        OnTooLarge,
        ReferenceBody,
        WebhookClient,
    )
    from bridge.webhook.outcome import DeliveryKind, DeliveryOutcome
    from bridge.webhook.policy import (
        Verdict,
        backoff_delay,
        classify,
        parse_retry_after,
        status_class,
    )
    from bridge.webhook.signing import decode_secret, sign, webhook_id
    from bridge.webhook.target import BasicAuth, TooLargePolicy, WebhookTarget

_HOMES = {
    "BreakerState": "breaker",
    "CircuitBreaker": "breaker",
    "OnBreakerChange": "client",
    "OnRequest": "client",
    "OnTooLarge": "client",
    "ReferenceBody": "client",
    "WebhookClient": "client",
    "DeliveryKind": "outcome",
    "DeliveryOutcome": "outcome",
    "Verdict": "policy",
    "backoff_delay": "policy",
    "classify": "policy",
    "parse_retry_after": "policy",
    "status_class": "policy",
    "decode_secret": "signing",
    "sign": "signing",
    "webhook_id": "signing",
    "BasicAuth": "target",
    "TooLargePolicy": "target",
    "WebhookTarget": "target",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"bridge.webhook.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
