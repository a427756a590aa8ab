"""Every message of the real-world corpus ($POPBRIDGE_CORPUS) becomes a schema-valid payload."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from bridge.mime import Payload, build_payload, payload_json, payload_schema

_SKIP_NAMES = {"MANIFEST.tsv", "SOURCES.md", "survey.py"}


def _corpus_files() -> list[Path]:
    root = os.environ.get("POPBRIDGE_CORPUS")
    if not root:
        return []
    return sorted(
        p
        for p in Path(root).rglob("*")
        if p.is_file() and p.name not in _SKIP_NAMES and not p.name.startswith(".")
    )


FILES = _corpus_files()
pytestmark = pytest.mark.skipif(
    not os.environ.get("POPBRIDGE_CORPUS"),
    reason="POPBRIDGE_CORPUS is not set (point it at shared/corpus to run the corpus test)",
)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    """A JSON Schema validator for the payload schema, checked to be a valid schema itself."""
    schema = payload_schema(strict=True)  # the bridge sends exactly its documented fields
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_corpus_is_complete() -> None:
    """The corpus variable points at the real corpus: at least 300 messages are found."""
    root = os.environ.get("POPBRIDGE_CORPUS", "")
    assert Path(root).is_dir(), f"POPBRIDGE_CORPUS={root} is not a directory (use an absolute path)"
    assert len(FILES) >= 300, f"only {len(FILES)} files under $POPBRIDGE_CORPUS"


def test_every_corpus_message_gives_a_valid_payload(
    validator: jsonschema.Draft202012Validator,
) -> None:
    """No corpus message makes the parser fail; each payload validates and round-trips."""
    failures: list[str] = []
    fetched_at = datetime(2024, 1, 1, tzinfo=UTC)
    for path in FILES:
        raw = path.read_bytes()
        payload = build_payload(
            raw, mailbox="corpus", uidl=path.name, webhook_id="msg_1", fetched_at=fetched_at
        )
        body = payload_json(payload)
        document = json.loads(body)
        errors = [e.message for e in validator.iter_errors(document)]
        if errors:
            failures.append(f"{path}: schema: {errors[:3]}")
        if Payload.model_validate_json(body) != payload:
            failures.append(f"{path}: model round trip differs")
        if any(d.kind == "parser_failed" for d in payload.defects):
            failures.append(f"{path}: fell back to the last-resort payload")
        if payload.size != len(raw):
            failures.append(f"{path}: size {payload.size} != {len(raw)}")
    assert not failures, "\n".join(failures)
