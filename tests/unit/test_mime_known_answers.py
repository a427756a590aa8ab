"""Known answers: generated messages whose right payload is known by construction."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

from bridge.mime import Payload, build_payload
from tests.mimegen.known import Expected, generate

NOW = datetime(2024, 1, 1, tzinfo=UTC)
COUNT = 4000


def mismatches(payload: Payload, expected: Expected) -> list[str]:
    """Every field where ``payload`` differs from the known answer."""
    wrong: list[str] = []
    if payload.subject != expected.subject:
        wrong.append(f"subject {payload.subject!r} != {expected.subject!r}")
    if [(a.name, a.address) for a in payload.from_] != expected.from_:
        wrong.append(f"from {payload.from_!r} != {expected.from_!r}")
    if [(a.name, a.address) for a in payload.to] != expected.to:
        wrong.append(f"to {payload.to!r} != {expected.to!r}")
    if not payload.text_from_html and payload.text != expected.text:
        wrong.append(f"text {payload.text!r} != {expected.text!r}")
    if payload.text_from_html and (expected.text is not None or expected.html is None):
        wrong.append("text derived from html although the message has a plain part")
    if payload.html != expected.html:
        wrong.append(f"html {payload.html!r} != {expected.html!r}")
    got = [(a.content_type, a.filename, a.size, a.sha256) for a in payload.attachments]
    if got != expected.attachments:
        wrong.append(f"attachments {got!r} != {expected.attachments!r}")
    enclosed = [a.message.subject for a in payload.attachments if a.message is not None]
    if enclosed != expected.enclosed_subjects:
        wrong.append(f"enclosed {enclosed!r} != {expected.enclosed_subjects!r}")
    return wrong


def test_generated_messages_parse_to_their_known_answers() -> None:
    """4,000 generated messages (fixed seed) each give exactly their known payload fields."""
    rng = random.Random(14)
    started = time.perf_counter()
    failures: list[str] = []
    for index in range(COUNT):
        raw, expected = generate(rng)
        payload = build_payload(raw, mailbox="k", uidl=str(index), webhook_id="w", fetched_at=NOW)
        for problem in mismatches(payload, expected):
            failures.append(f"#{index}: {problem}\n{raw[:3000]!r}")
    elapsed = time.perf_counter() - started
    print(f"{COUNT} known-answer messages generated and parsed in {elapsed:.1f} s")
    assert not failures, f"{len(failures)} mismatches; first:\n" + "\n".join(failures[:3])
