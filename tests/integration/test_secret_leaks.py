"""No configured secret reaches a sink, even when the receiver quotes the request's headers.

A real aiohttp receiver answers 401 with a body that repeats the credential headers it was
sent (as many API gateways do). Two mailboxes on the real Dovecot deliver to it through
``popbridge once``: one parks rejected messages (the ledger keeps ``last_error``), one spools
them to dead letters. Then each sink is searched for each kind of secret, in every form it
was sent: the JSON log, the ledger, the dead-letter ``.json`` files and the output of
``popbridge dead-letters``.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.dovecot import Dovecot
from tests.integration.kit import config_dict, make_message, write_config
from tests.integration.test_cli import popbridge
from tests.receiver import RecordedRequest, Reply, WebhookReceiver

pytestmark = pytest.mark.dovecot

HEADER_SECRET = "hdr-Secret/Value+0123456789"
BEARER = "tok.abcdefghij.0123456789"
BASIC_USER = "hook-user"
BASIC_PASSWORD = "basic-Pa55/word+xyz"


@dataclass(frozen=True)
class Kind:
    """One kind of secret: how it is configured and the strings that must never show up."""

    webhook: dict[str, Any]
    forbidden: tuple[str, ...]


KINDS = {
    "header": Kind({"headers": {"X-Api-Key": HEADER_SECRET}}, (HEADER_SECRET,)),
    "bearer": Kind({"bearer_token": BEARER}, (BEARER, f"Bearer {BEARER}")),
    "basic": Kind(
        {"basic_auth": {"username": BASIC_USER, "password": BASIC_PASSWORD}},
        (
            BASIC_PASSWORD,
            base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode(),
        ),
    ),
}


def _quote_headers(request: RecordedRequest) -> Reply:
    """A 401 whose body repeats the credentials, raw and as JSON (slashes escaped, as PHP)."""
    sent = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "x-api-key")}
    raw = "; ".join(f"{k}: {v}" for k, v in sent.items())
    as_json = json.dumps(sent).replace("/", "\\/")
    return Reply(401, body=f"unauthorized, you sent {raw} {as_json}".encode())


@dataclass
class Sinks:
    """Everything a run wrote down that a person or a machine may read later."""

    log: str
    ledger: str
    dead_letter: str
    cli: str
    requests: list[RecordedRequest]


_runs: dict[str, Sinks] = {}


async def _run(kind: str, dovecot: Dovecot, base: Path) -> Sinks:
    spec = KINDS[kind]
    async with WebhookReceiver() as receiver:
        receiver.decide(_quote_headers)
        parked_user, spooled_user = dovecot.new_user(), dovecot.new_user()
        parked_user.deliver(make_message(1))
        spooled_user.deliver(make_message(2))
        data_dir = base / "data"
        config = config_dict(dovecot, parked_user, receiver.url, data_dir)
        config["webhooks"]["main"].update(spec.webhook)
        config["log"] = {"level": "info", "format": "json"}
        spooled = dict(config["mailboxes"][0])
        spooled.update(
            name="spooled",
            username=spooled_user.name,
            password=spooled_user.password,
            reject_policy="dead_letter",
        )
        config["mailboxes"].append(spooled)
        path = write_config(base / "config.yaml", config)
        code, out, err = await popbridge("once", "-c", str(path))
        assert code != 0, "a rejected message must make `once` fail"
        _, listed, listed_err = await popbridge("dead-letters", "-c", str(path))
        requests = list(receiver.requests)
    with sqlite3.connect(data_dir / "ledger.sqlite3") as db:
        ledger = "\n".join(str(r[0]) for r in db.execute("SELECT last_error FROM deliveries"))
    letters = "\n".join(p.read_text() for p in (data_dir / "dead-letters").glob("*/*.json"))
    return Sinks(out + err, ledger, letters, listed + listed_err, requests)


@pytest.fixture
async def sinks(request: pytest.FixtureRequest, dovecot: Dovecot, tmp_path: Path) -> Sinks:
    """The sinks after one run with the secret kind of the test's ``kind`` parameter."""
    kind: str = request.param
    if kind not in _runs:
        _runs[kind] = await _run(kind, dovecot, tmp_path)
    return _runs[kind]


def _check(sinks: Sinks, kind: str, text: str) -> None:
    # The scenario really happened: the secret was sent and the receiver quoted it back.
    sent = " ".join(
        r.headers.get("Authorization", "") + r.headers.get("X-Api-Key", "") for r in sinks.requests
    )
    assert any(secret in sent for secret in KINDS[kind].forbidden)
    assert "HTTP 401" in text, text
    assert "[redacted]" in text, text
    for secret in KINDS[kind].forbidden:
        assert secret not in text
        assert secret.replace("/", "\\/") not in text


@pytest.mark.parametrize("sinks", list(KINDS), indirect=True)
def test_no_secret_in_the_json_log(sinks: Sinks, request: pytest.FixtureRequest) -> None:
    """The log lines of rejected deliveries carry the receiver's text, scrubbed."""
    _check(sinks, request.node.callspec.params["sinks"], sinks.log)


@pytest.mark.parametrize("sinks", list(KINDS), indirect=True)
def test_no_secret_in_the_ledger(sinks: Sinks, request: pytest.FixtureRequest) -> None:
    """``last_error`` of the parked message is the receiver's text, scrubbed."""
    _check(sinks, request.node.callspec.params["sinks"], sinks.ledger)


@pytest.mark.parametrize("sinks", list(KINDS), indirect=True)
def test_no_secret_in_the_dead_letters(sinks: Sinks, request: pytest.FixtureRequest) -> None:
    """The dead letter's ``reason`` is the receiver's text, scrubbed."""
    _check(sinks, request.node.callspec.params["sinks"], sinks.dead_letter)


@pytest.mark.parametrize("sinks", list(KINDS), indirect=True)
def test_no_secret_in_the_dead_letters_command(
    sinks: Sinks, request: pytest.FixtureRequest
) -> None:
    """``popbridge dead-letters`` shows the reason, scrubbed."""
    _check(sinks, request.node.callspec.params["sinks"], sinks.cli)
