"""How long parsing may take, and what a caller on an event loop should do about it.

Parsing is linear in the size of the message: every step looks at each byte a bounded
number of times (tests/unit/test_mime_timing.py checks this on adversarial inputs: runs of
every character a parsing step looks at, in every header and in the body structure). The
worst inputs found cost about 3 ms per KiB on a busy 2-core machine (a 64 KiB header
of 16,000 addresses); ordinary mail costs 0.1-0.3 ms per KiB.

So a caller on an event loop parses a message inline only when it is small enough that even
the worst case stays a short pause (16 KiB: under ~50 ms worst case, under 5 ms for
ordinary mail), and in a worker thread otherwise (``asyncio.to_thread``), where the
interpreter switches back to the loop every few milliseconds.
"""

from __future__ import annotations

INLINE_PARSE_MAX_BYTES = 16 * 1024
"""Messages up to this many bytes may be parsed on the event loop; larger ones off it."""


def parses_inline(size: int) -> bool:
    """True when a message of ``size`` bytes may be parsed on the event loop."""
    return size <= INLINE_PARSE_MAX_BYTES
