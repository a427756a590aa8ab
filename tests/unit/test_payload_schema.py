"""The published payload schemas: the receivers' one allows fields added later, the strict one
is this release's exact shape, and the files in docs/schema/ are what the code generates."""

from __future__ import annotations

import email.message
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bridge.mime import PayloadOptions, build_payload, payload_json, payload_schema

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schema"


def _payload() -> dict[str, Any]:
    """A real payload as POSTed, of a message with an attachment."""
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.org", "b@example.org", "report"
    msg.set_content("see attached\n")
    msg.add_attachment(b"abc", maintype="application", subtype="octet-stream", filename="a.bin")
    payload = build_payload(
        bytes(msg),
        mailbox="inbox",
        uidl="u1",
        webhook_id="msg_1",
        fetched_at=datetime(2026, 11, 28, tzinfo=UTC),
        options=PayloadOptions(),
    )
    body: dict[str, Any] = json.loads(payload_json(payload))
    assert len(body["attachments"]) == 1
    return body


@pytest.mark.parametrize(
    ("name", "strict"), [("payload.schema.json", False), ("payload.strict.schema.json", True)]
)
def test_published_files_are_what_the_code_generates(name: str, strict: bool) -> None:
    """docs/schema/ is current (run `make schemas` after changing the payload model)."""
    published = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    assert published == payload_schema(strict=strict), f"docs/schema/{name} is stale: make schemas"


def test_both_schemas_accept_what_the_bridge_sends() -> None:
    """A payload as POSTed validates against both schemas."""
    body = _payload()
    for strict in (False, True):
        jsonschema.Draft202012Validator.check_schema(payload_schema(strict=strict))
        jsonschema.validate(body, payload_schema(strict=strict))


def test_receivers_schema_allows_added_fields_and_strict_does_not() -> None:
    """A field added in a later release (at the top and inside an attachment) passes the
    receivers' schema and fails the strict one."""
    body = _payload()
    body["spam_score"] = 1.5
    body["attachments"][0]["charset"] = "utf-8"
    jsonschema.validate(body, payload_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, payload_schema(strict=True))


def test_receivers_schema_still_requires_the_documented_fields() -> None:
    """Openness is about additions: a missing field or a wrong type still fails."""
    body = _payload()
    del body["webhook_id"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, payload_schema())
    body = _payload()
    body["size"] = "big"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, payload_schema())
