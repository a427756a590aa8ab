"""The typed result of one :meth:`~bridge.webhook.client.WebhookClient.deliver` call."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bridge.errors import WebhookError, WebhookRejectedError, WebhookTransientError

__all__ = ["DeliveryKind", "DeliveryOutcome"]


class DeliveryKind(enum.Enum):
    """How a delivery ended."""

    ACKED = "acked"
    """A 2xx: the receiver has it; the message may be deleted."""
    TRANSIENT = "transient"
    """Still failing after the allowed attempts (408/425/429/5xx, timeout, connection error)."""
    REJECTED = "rejected"
    """The receiver refused it (other 4xx, 3xx), or it was too large for the target (413 or
    over ``max_payload_bytes``) and the target's ``on_too_large`` is park or reject."""
    CIRCUIT_OPEN = "circuit_open"
    """Not attempted: the target's circuit breaker is open."""


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What happened to one delivery; ``error`` never contains a secret.

    ``status`` is the last HTTP status (None after a timeout, connection error or
    when nothing was sent); ``attempts`` counts HTTP requests made, including a 413
    reference resend; ``duration`` is seconds spent in the call, backoff included;
    ``retry_after`` is the receiver's ``Retry-After`` (capped) or, when the breaker
    is open, the seconds until it probes again (``retry_after_from_receiver`` tells which);
    ``used_reference`` is True when the
    last request carried the reference body (attachment contents omitted).
    """

    kind: DeliveryKind
    target: str
    webhook_id: str
    status: int | None = None
    attempts: int = 0
    error: str | None = None
    duration: float = 0.0
    retry_after: float | None = None
    used_reference: bool = False
    retry_after_from_receiver: bool = False
    """True when ``retry_after`` is the receiver's own ``Retry-After`` (not a breaker wait)."""
    parked: bool = False
    """REJECTED because it was too large for the target under ``on_too_large: park`` (or even
    by reference): the message must stay on the server, never be dead-lettered."""

    @property
    def acked(self) -> bool:
        """True when the receiver acknowledged the message."""
        return self.kind is DeliveryKind.ACKED

    def as_error(self) -> WebhookError | None:
        """Return the matching :mod:`bridge.errors` exception (not raised), or None if acked."""
        if self.kind is DeliveryKind.ACKED:
            return None
        message = f"webhook target {self.target!r}: {self.error or self.kind.value}"
        cls: type[WebhookError] = (
            WebhookRejectedError if self.kind is DeliveryKind.REJECTED else WebhookTransientError
        )
        return cls(
            message,
            target=self.target,
            status=self.status,
            attempt=self.attempts,
            retry_after=self.retry_after,
        )
