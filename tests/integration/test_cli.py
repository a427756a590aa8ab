"""The ``popbridge`` command end to end, as a subprocess, against the real Dovecot."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from tests.dovecot import Dovecot, Pop3User, free_port
from tests.integration.kit import config_dict, make_message, write_config
from tests.receiver import Reply, WebhookReceiver

pytestmark = pytest.mark.dovecot


async def popbridge(*args: str, within: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_once_drains_the_mailbox_and_exits_zero(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """``popbridge once`` delivers every message, deletes them, and exits 0."""
    pop3_user.deliver_many(make_message(i) for i in range(20))
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    config["log"] = {"level": "info", "format": "auto"}
    cfg = write_config(tmp_path / "c.yaml", config)
    code, out, err = await popbridge("once", "-c", str(cfg))
    assert code == 0, err
    assert pop3_user.count() == 0
    assert len(receiver.distinct_webhook_ids()) == 20
    # JSON lines when not on a terminal: one line per message and one per session.
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert sum(e.get("event") == "message" for e in events) == 20
    assert any(e.get("event") == "session" and e.get("deleted") == 20 for e in events)
    assert pop3_user.password not in out + err


async def test_once_exits_nonzero_when_a_delivery_fails(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A rejected message makes ``once`` exit 3 (left on the server) and stay there."""
    pop3_user.deliver_many(make_message(i) for i in range(2))
    receiver.reply(422)
    cfg = write_config(
        tmp_path / "c.yaml", config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    )
    code, _, _ = await popbridge("once", "-c", str(cfg))
    assert code == 3
    assert pop3_user.count() == 2


async def test_check_changes_nothing_and_prints_a_table(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """``check`` logs in and STATs; messages stay, nothing is posted, the ledger stays empty."""
    raws = [make_message(i) for i in range(3)]
    pop3_user.deliver_many(raws)
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "c.yaml", config_dict(dovecot, pop3_user, receiver.url, data))
    code, out, err = await popbridge("check", "-c", str(cfg))
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("inbox"))
    size = sum(len(r.replace(b"\n", b"\r\n")) for r in raws)
    assert row.split()[:4] == ["inbox", "ok", "3", str(size)]
    assert pop3_user.count() == 3
    assert receiver.requests == []


async def test_check_reports_a_wrong_password_without_showing_it(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A refused login is a FAILED row and exit 4 (as `once`); the password appears nowhere,
    and the table on stdout is not mixed with log lines (they go to stderr)."""
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    config["mailboxes"][0]["password"] = "Wrong-Password-123"
    cfg = write_config(tmp_path / "c.yaml", config)
    code, out, err = await popbridge("check", "-c", str(cfg))
    assert code == 4
    assert out.splitlines()[0].split() == ["MAILBOX", "STATUS", "MESSAGES", "BYTES", "DETAIL"]
    assert not any(line.startswith("{") for line in out.splitlines())
    assert "FAILED" in out
    assert "auth_error" in out
    assert "Wrong-Password-123" not in out + err


async def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    """A config mistake is reported with its key path and exit code 2."""
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "webhooks:\n  main: {url: 'http://127.0.0.1:1/h', secret: 'whsec_c2VjcmV0'}\n"
        "mailboxes:\n  - {name: a, host: h, port: 99999, username: u, password_file: /nonexistent,"
        " webhooks: [main]}\n"
    )
    code, _, err = await popbridge("once", "-c", str(cfg))
    assert code == 2
    assert "mailboxes[0].port" in err
    assert "mailboxes[0].password_file" in err


async def _scrape(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def _wait_http(url: str, within: float = 20) -> None:
    for _ in range(int(within * 20)):
        try:
            await _scrape(url)
            return
        except aiohttp.ClientError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered")


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}{labels}")


async def _run_service(
    config: dict[str, Any], tmp_path: Path
) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    config["http"] = {"listen": f"127.0.0.1:{port}"}
    cfg = write_config(tmp_path / "run.yaml", config)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "run",
        "-c",
        str(cfg),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    await _wait_http(base + "/healthz")
    return proc, base


async def _stop(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proc.wait(), 30)


async def test_run_serves_metrics_with_the_right_names_and_values(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """After the service drained 6 messages, /metrics shows them under the documented names."""
    pop3_user.deliver_many(make_message(i) for i in range(6))
    proc, base = await _run_service(
        config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data"), tmp_path
    )
    try:
        await receiver.wait_for(6, within=20)
        for _ in range(100):
            _, text = await _scrape(base + "/metrics")
            if _metric(text, "bridge_messages_deleted_total") == 6:
                break
            await asyncio.sleep(0.1)
        # the default metrics.mailbox_detail (essential): message counters summed over mailboxes
        assert "bridge_messages_fetched_total{" not in text
        assert _metric(text, "bridge_messages_fetched_total") == 6
        assert _metric(text, "bridge_messages_delivered_total", target="main") == 6
        assert _metric(text, "bridge_messages_deleted_total") == 6
        assert (
            _metric(text, "bridge_webhook_requests_total", target="main", status_class="2xx") == 6
        )
        assert _metric(text, "bridge_pop3_sessions_total", outcome="ok") >= 1
        assert _metric(text, "bridge_mailbox_messages", mailbox="inbox") in (0, 6)  # last STAT
        assert _metric(text, "bridge_mailboxes_owned") == 1
        assert _metric(text, "bridge_poll_lag_seconds_count") >= 1
        assert _metric(text, "bridge_webhook_request_duration_seconds_count", target="main") == 6
        assert _metric(text, "bridge_last_successful_poll_timestamp_seconds", mailbox="inbox") > 0
        assert _metric(text, "bridge_webhook_circuit_state", target="main") == 0
        assert _metric(text, "bridge_build_info") == 1
        status, body = await _scrape(base + "/readyz")
        assert status == 200, body
    finally:
        assert await _stop(proc) == 0


async def test_readyz_reports_a_failing_mailbox_without_making_the_process_unready(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A mailbox that cannot connect is listed under failing; /readyz stays 200 (issue 16).

    Its own verdict, ``/readyz?mailbox=broken``, is 503 and says why.
    """
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    broken = dict(config["mailboxes"][0], name="broken", port=free_port())  # nobody listens
    config["mailboxes"].append(broken)
    proc, base = await _run_service(config, tmp_path)
    try:
        for _ in range(100):
            status, body = await _scrape(base + "/readyz")
            failing = json.loads(body).get("failing", {})
            if "connect_error" in failing.get("broken", ""):
                break
            await asyncio.sleep(0.1)
        assert status == 200, body
        assert "inbox" not in failing
        assert "connect_error" in failing["broken"]
        status, body = await _scrape(base + "/readyz?mailbox=broken")
        assert status == 503
        assert "connect_error" in json.loads(body)["reason"]
        assert (await _scrape(base + "/readyz?mailbox=inbox"))[0] == 200
        assert (await _scrape(base + "/healthz"))[0] == 200
    finally:
        assert await _stop(proc) == 0


async def test_sigterm_mid_drain_exits_zero_and_loses_nothing(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """SIGTERM in the middle of a drain: exit 0, acknowledged messages deleted, none lost."""
    total = 120
    pop3_user.deliver_many(make_message(i) for i in range(total))
    receiver.reply(Reply(200, delay=0.03))
    config = config_dict(
        dovecot, pop3_user, receiver.url, tmp_path / "data", mailbox={"session_max_messages": 1000}
    )
    proc, _ = await _run_service(config, tmp_path)
    await receiver.wait_for(15, within=20)
    assert await _stop(proc) == 0
    acked_before = len(receiver.distinct_webhook_ids())
    assert acked_before < total, "the drain finished before SIGTERM; slow the receiver"
    # Everything acknowledged before the signal was deleted at QUIT; the rest is still there.
    assert pop3_user.count() == total - acked_before

    receiver.reply(200)
    cfg = write_config(tmp_path / "c.yaml", config)
    code, _, err = await popbridge("once", "-c", str(cfg))
    assert code == 0, err
    assert pop3_user.count() == 0
    assert len(receiver.distinct_webhook_ids()) == total
    assert len(receiver.requests) == total  # nothing was posted twice


async def test_demo_runs_to_completion() -> None:
    """``popbridge demo`` drains its built-in mailbox and reports success."""
    code, out, err = await popbridge("demo", "--quiet", within=120)
    assert code == 0, out + err
    assert "OK: delete-after-ack demo finished" in out
    assert "messages on the server before: 12, after: 0" in out
    assert "complete payload" not in out  # --quiet: only the summary


async def test_demo_prints_one_complete_payload() -> None:
    """Without --quiet the demo prints one payload whole, as the receiver got it: valid JSON
    with every field of the exact schema, attachment content included."""
    from bridge.mime import payload_schema

    code, out, err = await popbridge("demo", within=120)
    assert code == 0, out + err
    lines = out.splitlines()
    start = lines.index("{")
    end = lines.index("}", start)
    payload = json.loads("\n".join(lines[start : end + 1]))
    schema = payload_schema(strict=True)
    jsonschema.validate(payload, schema)
    assert set(schema["required"]) <= set(payload)  # every field always sent is there
    assert payload["subject"] == "Our new logo"
    assert payload["attachments"][0]["content"]
    assert lines.count("{") == 1  # one payload, not one per message


def test_version_flag() -> None:
    """``--version`` prints the package version."""
    import subprocess

    from bridge import __version__

    out = subprocess.run(
        [sys.executable, "-m", "bridge", "--version"],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ),
    )
    assert out.stdout.strip() == f"popbridge {__version__}"


@pytest.mark.parametrize(
    ("which", "keys"),
    [
        ("payload", {"version", "webhook_id", "from", "attachments", "defects"}),
        ("config", {"data_dir", "http", "webhooks", "mailboxes"}),
    ],
)
async def test_schema_prints_json_schema(which: str, keys: set[str]) -> None:
    """``schema payload|config`` prints a JSON Schema naming the public top-level keys."""
    code, out, _ = await popbridge("schema", which)
    assert code == 0
    schema = json.loads(out)
    assert keys <= set(schema["properties"])


async def test_validate_accepts_the_annotated_example(tmp_path: Path) -> None:
    """``validate`` loads deploy/config.example.yaml (with its secrets provided) and exits 0."""
    example = Path(__file__).parents[2] / "deploy" / "config.example.yaml"
    text = example.read_text()
    for secret in (
        "/run/secrets/support",
        "/run/secrets/archive-webhook-secret",
        "/run/secrets/archive-token",
        "/run/secrets/sales-oauth-token",
    ):
        local = tmp_path / secret.rsplit("/", 1)[1]
        local.write_text("whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQ=" + "\n")
        text = text.replace(secret, str(local))
    cfg = tmp_path / "example.yaml"
    cfg.write_text(text)
    env = dict(os.environ, WEBHOOK_SECRET="whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "validate",
        "-c",
        str(cfg),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert b"ok (2 mailboxes, 2 webhooks)" in out


def test_once_shows_progress_on_a_terminal(
    dovecot: Dovecot, pop3_user: Pop3User, tmp_path: Path
) -> None:
    """On a terminal ``once`` draws a progress line; the final one has the totals."""
    import pty
    import subprocess

    pop3_user.deliver_many(make_message(i) for i in range(3))
    # Deliveries are refused (nobody listens), so the counts are fetched, not delivered.
    config = config_dict(dovecot, pop3_user, f"http://127.0.0.1:{free_port()}/h", tmp_path / "d")
    config["webhooks"]["main"]["max_attempts"] = 1
    cfg = write_config(tmp_path / "c.yaml", config)
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bridge", "once", "-c", str(cfg)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=terminal,
            timeout=60,
            check=False,
        )
        os.close(terminal)
        terminal = -1
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
        if terminal != -1:
            os.close(terminal)
    assert proc.returncode == 3  # messages left on the server
    last = shown.decode().replace("\r\n", "\n").split("\r")[-1]
    assert "3 fetched, 0 delivered, 0 deleted, 3 on server" in last
    assert pop3_user.count() == 3


async def test_second_signal_exits_at_once_and_loses_nothing(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A second SIGTERM exits at once (without waiting for the grace period); nothing is
    deleted without QUIT, so a later run delivers everything, each message once acknowledged."""
    total = 40
    pop3_user.deliver_many(make_message(i) for i in range(total))
    receiver.reply(Reply(200, delay=0.5))
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    config["shutdown_grace"] = 60
    proc, _ = await _run_service(config, tmp_path)
    await receiver.wait_for(1, within=20)
    proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(proc.wait(), 10)
    assert code == 128 + signal.SIGTERM
    left = pop3_user.count()
    assert left == total  # no QUIT: nothing was deleted

    receiver.reply(200)
    cfg = write_config(tmp_path / "c.yaml", config)
    code, _, err = await popbridge("once", "-c", str(cfg))
    assert code == 0, err
    assert pop3_user.count() == 0
    assert len(receiver.distinct_webhook_ids()) == total


def test_a_closed_pipe_ends_output_quietly() -> None:
    """``popbridge schema config | head`` must not print a traceback when head exits early."""
    import subprocess

    reader, writer = os.pipe()
    os.close(reader)  # nobody will read: the first write fails with EPIPE
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bridge", "schema", "config"],
            stdout=writer,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(writer)
    assert proc.returncode == 1
    assert b"Traceback" not in proc.stderr


async def test_check_webhooks_sends_one_signed_test_event_per_target(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """``check --webhooks`` posts one signed ``popbridge.test`` event to each target (the
    reference library verifies it) and prints each answer; a failing target is FAILED and
    exit 1; no mail is touched."""
    from standardwebhooks.webhooks import Webhook

    from tests.integration.kit import SECRET

    pop3_user.deliver_many([make_message(1)])
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    config["webhooks"]["gone"] = dict(config["webhooks"]["main"], url=receiver.url + "/gone")
    receiver.decide(lambda r: 410 if r.path.endswith("/gone") else 204)
    cfg = write_config(tmp_path / "c.yaml", config)
    code, out, err = await popbridge("check", "--webhooks", "-c", str(cfg))
    assert code == 4, err
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["main"][1:3] == ["ok", "HTTP"]
    assert lines["gone"][1:3] == ["FAILED", "HTTP"]
    assert "410" in lines["gone"]
    assert len(receiver.requests) == 2  # one each, no retry
    for request in receiver.requests:
        event = Webhook(SECRET).verify(request.body, dict(request.headers))
        assert event["type"] == "popbridge.test"
    assert pop3_user.count() == 1
    assert not (tmp_path / "data").exists()
