"""The webhook receiver fixture: other tests trust it, so its own behaviour is pinned here."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.receiver import RecordedRequest, Reply, WebhookReceiver


async def post(url: str, body: bytes = b"{}", **headers: str) -> tuple[int, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        await response.read()
        return response.status, dict(response.headers)


async def test_records_method_path_headers_and_exact_body(receiver: WebhookReceiver) -> None:
    """Each request is recorded: method, path, query, headers and the body byte for byte."""
    body = bytes(range(256)) * 3
    status, _ = await post(receiver.url + "?x=1", body, **{"webhook-id": "msg_1"})
    assert status == 200
    (seen,) = receiver.requests
    assert (seen.method, seen.path, seen.query) == ("POST", "/hook", "x=1")
    assert seen.body == body
    assert seen.headers["Webhook-Id"] == "msg_1"
    assert seen.webhook_id == "msg_1"
    assert seen.answered == 200
    assert abs(seen.time - time.time()) < 5
    assert seen.peer is not None
    assert seen.peer[0] == "127.0.0.1"


async def test_sequence_then_default_reply(receiver: WebhookReceiver) -> None:
    """A scripted sequence answers the next requests in order, then the default reply takes over."""
    receiver.reply(202)
    receiver.sequence([500, Reply(429, retry_after=7), 200])
    statuses = []
    retry_afters = []
    for _ in range(5):
        status, headers = await post(receiver.url)
        statuses.append(status)
        retry_afters.append(headers.get("Retry-After"))
    assert statuses == [500, 429, 200, 202, 202]
    assert retry_afters == [None, "7", None, None, None]
    assert [r.answered for r in receiver.requests] == statuses


async def test_decider_chooses_by_body_and_falls_through(receiver: WebhookReceiver) -> None:
    """A decide callable answers by request content; returning None falls back to the script."""

    def decide(request: RecordedRequest) -> int | None:
        return 400 if request.json().get("bad") else None

    receiver.decide(decide)
    receiver.sequence([503])
    assert (await post(receiver.url, b'{"bad": true}'))[0] == 400
    assert (await post(receiver.url, b'{"bad": false}'))[0] == 503
    assert (await post(receiver.url, b"{}"))[0] == 200


async def test_async_decider_and_delay(receiver: WebhookReceiver) -> None:
    """An async decider works, and a delayed reply arrives no sooner than the delay."""

    async def decide(request: RecordedRequest) -> Reply:
        return Reply(201, body=b"late", delay=0.3)

    receiver.decide(decide)
    started = time.monotonic()
    status, _ = await post(receiver.url)
    assert status == 201
    assert time.monotonic() - started >= 0.3


async def test_drop_closes_the_connection_without_an_answer(receiver: WebhookReceiver) -> None:
    """Reply(drop=True) makes the client see a disconnect, not a status."""
    receiver.reply(Reply(drop=True))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(receiver.url)
    assert len(receiver.requests) == 1
    assert receiver.requests[0].answered is None


async def test_stop_refuses_connections_and_restart_reuses_the_port(
    receiver: WebhookReceiver,
) -> None:
    """After stop() connections are refused; start() again serves the same URL."""
    url = receiver.url
    await receiver.stop()
    assert not receiver.running
    with pytest.raises(aiohttp.ClientConnectorError):
        await post(url)
    await receiver.start()
    assert receiver.url == url
    assert (await post(url))[0] == 200
    await receiver.restart()
    assert (await post(url))[0] == 200


async def test_distinct_webhook_ids_and_wait_for(receiver: WebhookReceiver) -> None:
    """webhook_ids keeps duplicates in order, distinct_webhook_ids is the set, wait_for waits."""

    async def send_later() -> None:
        await asyncio.sleep(0.05)
        for wid in ("a", "b", "a"):
            await post(receiver.url, **{"webhook-id": wid})

    task = asyncio.create_task(send_later())
    await receiver.wait_for(3, within=5)
    await task
    assert receiver.webhook_ids() == ["a", "b", "a"]
    assert receiver.distinct_webhook_ids() == {"a", "b"}
    with pytest.raises(TimeoutError):
        await receiver.wait_for(4, within=0.05)
    receiver.clear()
    assert receiver.requests == []


async def test_stop_cuts_off_a_delayed_reply(receiver: WebhookReceiver) -> None:
    """A receiver going down mid-request leaves the client without an answer."""
    receiver.reply(Reply(200, delay=30))
    request = asyncio.create_task(post(receiver.url))
    await receiver.wait_for(1)
    await receiver.stop()
    with pytest.raises(aiohttp.ClientError):
        await asyncio.wait_for(request, 5)


def test_standalone_process_records_json_lines(tmp_path: Path) -> None:
    """`python -m tests.receiver` serves until SIGTERM and appends each request as JSON."""
    record = tmp_path / "requests.jsonl"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.receiver", "--status", "204", "--record", str(record)],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY http://127.0.0.1:")
        url = line.split()[1]
        status = asyncio.run(post(url, b'{"n": 1}', **{"webhook-id": "msg_x"}))[0]
        assert status == 204
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        if proc.stdout is not None:
            proc.stdout.close()
    (entry,) = [json.loads(x) for x in record.read_text().splitlines()]
    assert base64.b64decode(entry["body_b64"]) == b'{"n": 1}'
    assert ["webhook-id", "msg_x"] in [[k.lower(), v] for k, v in entry["headers"]]
    assert entry["answered"] == 204
