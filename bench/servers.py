"""The bridge on several real POP3 servers side by side (issue 12): Dovecot, Courier, mailutils.

Each server (tests/dovecot.py, tests/pop3servers.py) gets the same ``BENCH_SERVERS_COUNT``
(2000) small messages, stored with LF line ends (Courier and mailutils serve CRLF-stored
Maildir files wrongly), and ``popbridge once`` drains it as a subprocess: wall time from start
to exit, every message exactly once, the mailbox empty after. ``session_max_messages`` is set
above the count on every server, so each drain is one session: Courier announces
``LOGIN-DELAY 10``, which the bridge keeps to between sessions, and that wait would be measured
instead of the transfer. Target: each server within 2x of Dovecot's time.

Servers that leave Nagle on (Courier, mailutils) used to stall ~40 ms per pipelining refill
(Courier ~16 s for 5000 messages against Dovecot's ~3.5 s); the window is now kept full.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from bench.workloads import small_workload
from tests.dovecot import Dovecot, Pop3User
from tests.pop3servers import SERVERS, ServerBed, ServerUnavailable

TARGET_RATIO = 2.0
"""Each server's drain time <= this many times Dovecot's."""


class _Bench(Protocol):
    """What this module needs from bench.run.Bench (no import cycle)."""

    dovecot: Dovecot
    work: Path
    failures: list[str]

    @property
    def receiver(self) -> Any: ...

    def verify(self, label: str, user: Pop3User, expected: int, *, signed: bool = False) -> None:
        """The mailbox ended empty and the receiver saw every message exactly once."""


@dataclass
class ServerRow:
    server: str
    seconds: float
    messages: int
    samples: list[float]
    ratio: float = 1.0


def _config(b: _Bench, host: str, port: int, user: Pop3User, count: int) -> list[str]:
    data_dir = Path(tempfile.mkdtemp(prefix="servers-", dir=b.work))
    box = {
        "name": "bench",
        "host": host,
        "port": port,
        "tls": "none",
        "allow_insecure_auth": True,
        "auth": "user",
        "username": user.name,
        "password": user.password,
        "webhooks": ["main"],
        "session_max_messages": count + 1,
    }
    config = {
        "data_dir": str(data_dir),
        "http": {"listen": "127.0.0.1:0"},
        "log": {"level": "warning", "format": "json"},
        "webhooks": {"main": {"url": b.receiver.url, "secret": _secret()}},
        "mailboxes": [box],
    }
    path = data_dir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return [sys.executable, "-m", "bridge", "once", "-c", str(path)]


def _secret() -> str:
    from bench.run import SECRET

    return SECRET


def _drain(b: _Bench, label: str, host: str, port: int, user: Pop3User, count: int) -> float:
    from bench.run import run_timed

    b.receiver.reset()
    timed = run_timed(_config(b, host, port, user, count))
    if timed.returncode != 0:
        b.failures.append(f"{label}: popbridge once exited {timed.returncode}")
        print(f"  {label}: exit {timed.returncode}: {timed.stdout[-1500:]}", file=sys.stderr)
    b.verify(label, user, count, signed=True)
    return timed.seconds


def bench_servers(b: _Bench, repeat: int, count: int) -> list[ServerRow]:
    """Drain ``count`` small messages on Dovecot and each other server, ``repeat`` times."""
    messages = [m.replace(b"\r\n", b"\n") for m in small_workload(count)]
    rows: list[ServerRow] = []
    beds: dict[str, tuple[str, int, Any]] = {
        "dovecot": (b.dovecot.host, b.dovecot.port, b.dovecot.new_user)
    }
    started: list[ServerBed] = []
    try:
        for name, cls in sorted(SERVERS.items()):
            bed = cls()
            try:
                bed.start()
            except ServerUnavailable as exc:
                bed.stop()
                b.failures.append(f"servers: {name} did not start: {exc}")
                continue
            started.append(bed)
            beds[name] = (bed.host, bed.port, bed.new_user)
        for name, (host, port, new_user) in beds.items():
            samples = []
            for i in range(repeat):
                user = new_user()
                user.deliver_many(messages)
                seconds = _drain(b, f"servers {name}#{i + 1}", host, port, user, count)
                samples.append(seconds)
                print(f"  {name}: {seconds:.2f} s for {count} messages", file=sys.stderr)
            samples.sort()
            rows.append(ServerRow(name, samples[len(samples) // 2], count, samples))
    finally:
        for bed in started:
            bed.stop()
    base = rows[0].seconds if rows and rows[0].server == "dovecot" else float("nan")
    for row in rows:
        row.ratio = row.seconds / base
    return rows


def render_servers(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown lines for the report."""
    if not rows:
        return []
    lines = [
        "",
        f"Servers side by side: `popbridge once`, {rows[0]['messages']} small messages, one "
        "session (median)",
        "",
        "| server | seconds | msg/s | x Dovecot's time |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        rate = r["messages"] / r["seconds"] if r["seconds"] else float("nan")
        lines.append(f"| {r['server']} | {r['seconds']:.2f} | {rate:,.0f} | {r['ratio']:.2f} |")
    return lines


def as_dicts(rows: list[ServerRow]) -> list[dict[str, Any]]:
    return [json.loads(json.dumps(row.__dict__)) for row in rows]
