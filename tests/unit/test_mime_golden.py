"""Golden tests: each tests/golden/NAME.eml must turn into exactly tests/golden/NAME.json.

The inputs were written for these tests (not taken from the corpus). To regenerate the
expected files after an intended change, run::

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_mime_golden.py

and review the diff before committing. ``NAME.options.json`` next to an input, if present,
holds :class:`PayloadOptions` keyword arguments for that case.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.mime import Payload, PayloadOptions, build_payload, payload_json

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
CASES = sorted(GOLDEN.glob("*.eml"))
FETCHED_AT = datetime(2024, 3, 5, 8, 30, tzinfo=UTC)


def _build(path: Path) -> bytes:
    options_file = path.with_suffix(".options.json")
    options = (
        PayloadOptions(**json.loads(options_file.read_text()))
        if options_file.exists()
        else PayloadOptions()
    )
    payload = build_payload(
        path.read_bytes(),
        mailbox="golden",
        uidl=path.stem,
        webhook_id=f"msg_{path.stem}",
        fetched_at=FETCHED_AT,
        options=options,
    )
    return payload_json(payload)


def test_there_are_enough_golden_cases() -> None:
    """The issue asks for at least 30 hand-written golden messages."""
    assert len(CASES) >= 30


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path) -> None:
    """The payload JSON of each golden message equals its reviewed expected JSON."""
    body = _build(path)
    expected_file = path.with_suffix(".json")
    actual = json.loads(body)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected_file.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n")
    assert expected_file.exists(), f"no expected file; run with UPDATE_GOLDEN=1 for {path.name}"
    expected = json.loads(expected_file.read_text(encoding="utf-8"))
    assert actual == expected
    assert Payload.model_validate_json(body).model_dump(mode="json") == actual
