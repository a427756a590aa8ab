"""One mailbox's POP3 session: the only place that decides retry, park or delete.

A session (see ../DESIGN.md, "The delivery ledger"):

1. open a logged-in client (the caller's factory), STAT, UIDL and LIST;
2. reconcile: messages every target already acknowledged are deleted without posting again,
   once their content is proven to be what was acknowledged (:mod:`bridge.reconcile`; no
   proof: a new message), ledger rows whose UIDL is gone are pruned, parked messages whose
   time has not come are skipped;
3. new messages oldest first, in batches within the session budget: RETR (pipelined),
   parse, POST to every target that has not acknowledged yet; when all have, the
   acknowledgement (with the message's size and SHA-256) is made durable and only then is
   DELE sent. A message whose RETR fails (-ERR, too large, too slow) is parked with a short,
   growing backoff and the session goes on; memory follows the bytes received, not LIST;
4. QUIT. Only its ``+OK`` commits the deletions.

The poller never parses bytes (that is :mod:`bridge.mime`) and never speaks HTTP (that is
:mod:`bridge.webhook`); it decides what their results mean for the message.
"""

from bridge.errors import BridgeError
from bridge.identity import Message
from bridge.poller.model import (
    LARGE_MESSAGE_BYTES,
    MAX_RECONNECTS,
    PARSE_IN_THREAD_BYTES,
    SLOW_START_WINDOW,
    ClientFactory,
    MailboxPolicy,
    SessionMetrics,
    SessionResult,
)
from bridge.poller.session import Poller

__all__ = [
    "LARGE_MESSAGE_BYTES",
    "MAX_RECONNECTS",
    "PARSE_IN_THREAD_BYTES",
    "SLOW_START_WINDOW",
    "BridgeError",
    "ClientFactory",
    "MailboxPolicy",
    "Message",
    "Poller",
    "SessionMetrics",
    "SessionResult",
]
