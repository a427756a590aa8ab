"""Scale workload: many mostly idle mailboxes polled by one process (issue 15).

For each size (``BENCH_SCALE``, default ``500,2000,10000``; ``500`` for a quick look) and TLS
mode (``BENCH_SCALE_TLS``, default ``none,starttls``), against one throwaway Dovecot holding that
many users:

1. **bridge**: ``popbridge run`` with one mailbox per user, ``poll_interval``
   ``BENCH_SCALE_INTERVAL`` (60 s), ``max_concurrent_sessions`` ``BENCH_SCALE_CONCURRENCY``
   (8), info logs. STLS verifies
   against the *default* trust store: ``SSL_CERT_FILE`` points at the system bundle plus the
   test CA, so loading it costs what the system store costs. A feeder drops a small message
   into a random mailbox for one poll in ten, so sessions find mail now and then.
2. **baseline**: the same sessions from a minimal asyncio POP3 poller (this module run as
   ``python -m bench.scale baseline``): the same phase schedule, concurrency and TLS (one
   shared context), login, ``STAT``, ``RETR``/``DELE`` when there is mail, ``QUIT``; no
   ledger, parsing, webhooks, metrics or logs. What the sessions themselves cost.

After a warm-up of one interval (every mailbox's first poll), over a window of
``BENCH_SCALE_SECONDS`` (default: one interval): sessions per second done against needed
(mailboxes / interval), CPU of the process (share of one core), peak RSS, poll lag p99
(``bridge_poll_lag_seconds``; the baseline measures its own), and for the bridge the size of
``/metrics``, the time to scrape it, and how long ``/healthz`` took at worst while a scrape
ran (the event loop's stall). Correctness: every message the feeder dropped was posted
exactly once or is still on the server.

``make bench`` runs it at 500 mailboxes (``BENCH_SKIP=scale`` leaves it out);
``python -m bench.scale`` runs only this table (with its own Dovecot and receiver).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bridge.scheduler import first_delay, next_slot, phase_of
from tests.dovecot import Dovecot, Pop3User
from tests.integration.kit import make_message

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_YmVuY2htYXJrLXNlY3JldC0zMi1ieXRlcy1sb25nISE="  # noqa: S105 - bench-only key
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CONCURRENCY = int(os.environ.get("BENCH_SCALE_CONCURRENCY", "8"))  # max_concurrent_sessions
MAIL_SHARE = 0.1  # one poll in ten finds a message
TARGETS = {"lag_p99": 5.0, "cpu": 0.5, "rss_mb": 250.0, "metrics_mb": 2.0, "scrape_s": 0.2}


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _env_list(name: str, default: str) -> list[str]:
    return [v.strip() for v in os.environ.get(name, default).split(",") if v.strip()]


# ---------------------------------------------------------------------- the server


class ScaleDovecot(Dovecot):
    """The test bed's Dovecot, tuned for hundreds of short sessions per second.

    Dovecot's defaults fork a login process per connection and a mail process per session;
    here login processes serve many connections (its "high-performance" mode) and mail
    processes are reused, so the server is not what limits the table on 2 cores.
    """

    def _write_config(self, cert: Path, key: Path) -> None:
        super()._write_config(cert, key)
        text = self.config_path.read_text()
        text = text.replace(
            "service pop3-login {\n",
            "service pop3-login {\n  service_count = 0\n  process_min_avail = 2\n"
            "  client_limit = 1000\n",
            1,
        )
        text += "service pop3 {\n  service_count = 0\n  process_min_avail = 4\n}\n"
        self.config_path.write_text(text)


# ---------------------------------------------------------------------- the process


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _get(url: str, timeout: float = 30.0) -> tuple[bytes, float]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
        body: bytes = response.read()
    return body, time.perf_counter() - started


def _samples(text: str, name: str) -> dict[str, float]:
    """``{label text: value}`` for one metric name in an exposition."""
    out: dict[str, float] = {}
    for match in re.finditer(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.M):
        out[match.group(1) or ""] = float(match.group(2))
    return out


def quantile_from_buckets(buckets: dict[float, float], q: float) -> float:
    """Prometheus' histogram_quantile over cumulative ``{le: count}``."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return 0.0
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return prev_bound
            width = count - prev_count
            return prev_bound + (bound - prev_bound) * ((rank - prev_count) / width if width else 1)
        prev_bound, prev_count = bound, count
    return bounds[-1]


def _lag_buckets(text: str) -> dict[float, float]:
    out = {}
    for labels, value in _samples(text, "bridge_poll_lag_seconds_bucket").items():
        le = re.search(r'le="([^"]+)"', labels)
        assert le is not None
        out[float(le.group(1).replace("+Inf", "inf"))] = value
    return out


# ---------------------------------------------------------------------- feeder


class Feeder(threading.Thread):
    """Drops one small message at a time into random mailboxes, at ``rate`` per second."""

    def __init__(self, users: Sequence[Pop3User], rate: float, seed: int) -> None:
        super().__init__(daemon=True)
        self.users = users
        self.rate = rate
        self.rng = random.Random(seed)
        self.delivered = 0
        self._halt = threading.Event()
        self._n = seed * 1_000_000

    def run(self) -> None:
        started = time.monotonic()
        while not self._halt.is_set():
            due = started + self.delivered / self.rate
            if self._halt.wait(max(0.0, due - time.monotonic())):
                return
            self._n += 1
            self.rng.choice(self.users).deliver(make_message(self._n))
            self.delivered += 1

    def stop(self) -> None:
        self._halt.set()
        self.join()


# ---------------------------------------------------------------------- one run


@dataclass
class ScaleRow:
    """One line of the scale table."""

    mailboxes: int
    tls: str
    client: str
    interval: float
    seconds: float
    sessions_per_s: float
    needed_per_s: float
    cpu_share: float
    rss_mb: float
    lag_p99: float
    failed_sessions: float = 0.0
    metrics_bytes: int | None = None
    scrape_s: float | None = None
    scrape_stall_s: float | None = None
    idle_stall_s: float | None = None
    tls_contexts: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ScaleBench:
    """Dovecot, receiver and the users shared by every run of the table."""

    dovecot: Dovecot
    receiver_url: str
    receiver_stats: Any
    receiver_reset: Any
    work: Path
    users: list[Pop3User] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def ensure_users(self, count: int) -> list[Pop3User]:
        """At least ``count`` users (one passwd reload for all), each with an empty mailbox."""
        missing = count - len(self.users)
        if missing > 0:
            self.dovecot._fill_pool(missing)  # one reload for all of them
            time.sleep(1.2)
            self.users.extend(self.dovecot.new_user() for _ in range(missing))
        for user in self.users[:count]:
            user.clear()
        return self.users[:count]

    def trust_bundle(self) -> Path:
        """The system CA bundle plus the test CA: a default store as costly as the real one."""
        path = self.work / "trust-bundle.pem"
        if not path.exists():
            system = SYSTEM_BUNDLE.read_bytes() if SYSTEM_BUNDLE.exists() else b""
            path.write_bytes(system + b"\n" + self.dovecot.ca_file.read_bytes())
        return path

    def config(self, users: Sequence[Pop3User], tls: str, interval: float, data_dir: Path) -> Path:
        boxes = []
        for i, user in enumerate(users):
            box: dict[str, Any] = {
                "name": f"mb{i:05d}",
                "host": self.dovecot.host,
                "port": self.dovecot.port,
                "tls": tls,
                "username": user.name,
                "password": user.password,
                "poll_interval": interval,
                "webhooks": ["main"],
            }
            if tls == "none":
                box["allow_insecure_auth"] = True
            boxes.append(box)
        config = {
            "data_dir": str(data_dir),
            "http": {"listen": f"127.0.0.1:{_free_port()}"},
            "log": {"level": "info", "format": "json"},
            "max_concurrent_sessions": CONCURRENCY,
            "webhooks": {"main": {"url": self.receiver_url, "secret": SECRET}},
            "mailboxes": boxes,
        }
        path = data_dir / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def run_one(self, size: int, tls: str, client: str, interval: float) -> ScaleRow:
        users = self.ensure_users(size)
        data_dir = Path(tempfile.mkdtemp(prefix=f"scale-{size}-", dir=self.work))
        env = {**os.environ, "SSL_CERT_FILE": str(self.trust_bundle())}
        warmup = float(os.environ.get("BENCH_SCALE_WARMUP", interval))
        window = float(os.environ.get("BENCH_SCALE_SECONDS", interval))
        needed = size / interval
        self.receiver_reset()
        feeder = Feeder(users, needed * MAIL_SHARE, seed=size + len(tls) + len(client))
        label = f"{size} mailboxes, {tls}, {client}"
        _log(f"scale: {label}: warm-up {warmup:.0f} s, window {window:.0f} s")
        if client == "bridge":
            config = self.config(users, tls, interval, data_dir)
            argv = [sys.executable, "-m", "bridge", "run", "-c", str(config)]
            port = yaml.safe_load(config.read_text())["http"]["listen"].rsplit(":", 1)[1]
            base = f"http://127.0.0.1:{port}"
        else:
            spec = data_dir / "baseline.json"
            spec.write_text(
                json.dumps(
                    {
                        "host": self.dovecot.host,
                        "port": self.dovecot.port,
                        "tls": tls,
                        "interval": interval,
                        "users": [[u.name, u.password] for u in users],
                    }
                )
            )
            argv = [sys.executable, "-m", "bench.scale", "baseline", str(spec)]
            base = ""
        out = (data_dir / "stdout").open("wb")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)  # noqa: S603
        row = ScaleRow(size, tls, client, interval, window, 0.0, needed, 0.0, 0.0, 0.0)
        try:
            if base:
                _wait_http(base + "/healthz", proc)
            feeder.start()
            time.sleep(warmup)
            before = self._sample(proc, base, data_dir)
            peak_rss = _rss_mb(proc.pid)
            end = time.monotonic() + window
            scrapes: list[tuple[int, float, float]] = []
            idle_stall = 0.0
            while time.monotonic() < end:
                peak_rss = max(peak_rss, _rss_mb(proc.pid))
                if (
                    base
                    and len(scrapes) < 3
                    and time.monotonic() > end - window * (3 - len(scrapes)) / 4
                ):
                    scrapes.append(_scrape_with_probe(base))
                elif base:
                    idle_stall = max(idle_stall, _healthz_time(base))
                time.sleep(1.0)
            after = self._sample(proc, base, data_dir)
            peak_rss = max(peak_rss, _rss_mb(proc.pid))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            out.close()
            feeder.stop()
        elapsed = after["t"] - before["t"]
        row.seconds = round(elapsed, 1)
        row.sessions_per_s = (after["sessions"] - before["sessions"]) / elapsed
        row.failed_sessions = after["failed"] - before["failed"]
        row.cpu_share = (after["cpu"] - before["cpu"]) / elapsed
        row.rss_mb = peak_rss
        lag = {le: after["lag"].get(le, 0.0) - before["lag"].get(le, 0.0) for le in after["lag"]}
        row.lag_p99 = quantile_from_buckets(lag, 0.99) if lag else after.get("lag_p99", 0.0)
        if scrapes:
            row.metrics_bytes = max(s[0] for s in scrapes)
            row.scrape_s = sorted(s[1] for s in scrapes)[len(scrapes) // 2]
            row.scrape_stall_s = max(s[2] for s in scrapes)
            row.idle_stall_s = idle_stall
        self._verify(label, users, feeder.delivered, client, row)
        _log(
            f"  {label}: {row.sessions_per_s:.1f}/{needed:.1f} sessions/s, "
            f"CPU {row.cpu_share:.0%}, RSS {row.rss_mb:.0f} MB, lag p99 {row.lag_p99:.2f} s"
            + (
                f", /metrics {row.metrics_bytes / 1e6:.2f} MB in {row.scrape_s * 1000:.0f} ms, "
                f"loop stall {row.scrape_stall_s * 1000:.0f} ms"
                if row.metrics_bytes and row.scrape_s is not None and row.scrape_stall_s is not None
                else ""
            )
        )
        return row

    def _sample(self, proc: subprocess.Popen[bytes], base: str, data_dir: Path) -> dict[str, Any]:
        sample: dict[str, Any] = {"t": time.monotonic(), "cpu": _cpu_seconds(proc.pid)}
        if base:
            text = _get(base + "/metrics")[0].decode()
            sessions = _samples(text, "bridge_pop3_sessions_total")
            sample["sessions"] = sum(sessions.values())
            sample["failed"] = sum(v for k, v in sessions.items() if 'outcome="ok"' not in k)
            sample["lag"] = _lag_buckets(text)
        else:
            proc.send_signal(signal.SIGUSR1)  # the baseline writes its counters to a file
            stats = data_dir / "baseline-stats.json"
            for _ in range(100):
                time.sleep(0.05)
                with contextlib.suppress(OSError, ValueError):
                    numbers = json.loads(stats.read_text())
                    if numbers["at"] > sample["t"] - 1:
                        break
            sample.update(sessions=numbers["sessions"], failed=numbers["failed"], lag={})
            sample["lag"] = {float(k): v for k, v in numbers["lag"].items()}
        return sample

    def _verify(
        self, label: str, users: Sequence[Pop3User], dropped: int, client: str, row: ScaleRow
    ) -> None:
        left = sum(u.count() for u in users)
        if client == "bridge":
            stats = self.receiver_stats()
            problems = []
            if stats["duplicates"]:
                problems.append(f"{stats['duplicates']} duplicate deliveries")
            if stats["distinct"] + left != dropped:
                problems.append(
                    f"{dropped} messages dropped in, {stats['distinct']} posted, {left} left"
                )
            if problems:
                self.failures.append(f"scale {label}: " + "; ".join(problems))
                _log(f"  CHECK FAILED scale {label}: " + "; ".join(problems))
        row.notes.append(f"{dropped} messages, {left} still on the server at the end")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the process exited with {proc.returncode} before serving")
        with contextlib.suppress(OSError):
            _get(url, timeout=2)
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {within} s")


def _healthz_time(base: str) -> float:
    return _get(base + "/healthz")[1]


def _scrape_with_probe(base: str) -> tuple[int, float, float]:
    """Scrape /metrics while /healthz is asked every 10 ms; (size, scrape s, worst healthz s)."""
    worst = 0.0
    done = threading.Event()

    def probe() -> None:
        nonlocal worst
        while not done.is_set():
            worst = max(worst, _healthz_time(base))
            time.sleep(0.01)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        body, seconds = _get(base + "/metrics")
    finally:
        done.set()
        prober.join()
    return len(body), seconds, worst


# ---------------------------------------------------------------------- the table


def run_table(bench: ScaleBench) -> dict[str, Any]:
    """Every size and TLS mode, bridge and baseline; the rows and the target checks."""
    sizes = [int(s) for s in _env_list("BENCH_SCALE", "500,2000,10000")]
    modes = _env_list("BENCH_SCALE_TLS", "none,starttls")
    interval = float(os.environ.get("BENCH_SCALE_INTERVAL", "60"))
    clients = _env_list("BENCH_SCALE_CLIENTS", "bridge,baseline")
    rows: list[ScaleRow] = []
    for size in sizes:
        for tls in modes:
            for client in clients:
                try:
                    rows.append(bench.run_one(size, tls, client, interval))
                except Exception as exc:  # one broken run must not lose the others' figures
                    bench.failures.append(f"scale {size}/{tls}/{client}: {exc}")
                    _log(f"  scale {size}/{tls}/{client} FAILED: {exc}")
    return {"rows": [asdict(r) for r in rows], "checks": checks(rows)}


def checks(rows: Sequence[ScaleRow]) -> list[dict[str, Any]]:
    """The issue's targets, for every bridge row (the 10,000 STLS one is the goal)."""
    out = []
    for r in rows:
        if r.client != "bridge":
            continue
        name = f"scale {r.mailboxes} {r.tls}"
        out.append(_check(f"{name}: keeps up", r.sessions_per_s / r.needed_per_s, ">= 0.97"))
        out.append(_check(f"{name}: poll lag p99 (s)", r.lag_p99, f"< {TARGETS['lag_p99']}"))
        out.append(_check(f"{name}: CPU (share of a core)", r.cpu_share, f"< {TARGETS['cpu']}"))
        out.append(_check(f"{name}: RSS (MB)", r.rss_mb, f"< {TARGETS['rss_mb']}"))
        if r.metrics_bytes is not None and r.scrape_s is not None:
            out.append(
                _check(
                    f"{name}: /metrics (MB)", r.metrics_bytes / 1e6, f"< {TARGETS['metrics_mb']}"
                )
            )
            out.append(_check(f"{name}: scrape (s)", r.scrape_s, f"< {TARGETS['scrape_s']}"))
    return out


def _check(name: str, value: float, target: str) -> dict[str, Any]:
    op, bound = target.split()
    passed = value >= float(bound) if op == ">=" else value < float(bound)
    return {"name": name, "value": value, "target": target, "passed": passed}


def render(scale: dict[str, Any]) -> str:
    """The scale table, bridge and baseline side by side."""
    head = (
        "| mailboxes | TLS | process | sessions/s done / needed | CPU (one core) | RSS | "
        "poll lag p99 | /metrics size, scrape | loop stall in scrape (idle) |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in scale["rows"]:
        metrics = stall = "-"
        if r["metrics_bytes"] is not None:
            metrics = f"{r['metrics_bytes'] / 1e6:.2f} MB, {r['scrape_s'] * 1000:.0f} ms"
            stall = f"{r['scrape_stall_s'] * 1000:.0f} ms ({r['idle_stall_s'] * 1000:.0f} ms)"
        tls = {"none": "none", "starttls": "STLS, system store"}.get(r["tls"], r["tls"])
        lines.append(
            f"| {r['mailboxes']:,} | {tls} | {r['client']} | "
            f"{r['sessions_per_s']:.1f} / {r['needed_per_s']:.1f} | {r['cpu_share']:.0%} | "
            f"{r['rss_mb']:.0f} MB | {r['lag_p99']:.2f} s | {metrics} | {stall} |"
        )
    text = head + "\n".join(lines)
    if scale["checks"]:
        text += "\n\n" + "\n".join(
            f"- {'PASS' if c['passed'] else 'FAIL'} {c['name']}: {c['value']:.3g} "
            f"(target {c['target']})"
            for c in scale["checks"]
        )
    return text


# ---------------------------------------------------------------------- the baseline poller


async def _baseline(spec: dict[str, Any], stats_path: Path) -> None:
    """A minimal POP3 poller: the same schedule and sessions as the bridge, nothing else."""
    host, port, interval = spec["host"], spec["port"], float(spec["interval"])
    users = [tuple(u) for u in spec["users"]]
    context = ssl.create_default_context() if spec["tls"] != "none" else None
    counters: dict[str, Any] = {"sessions": 0, "failed": 0, "lags": []}
    gate = asyncio.Semaphore(CONCURRENCY)
    loop = asyncio.get_running_loop()

    def dump() -> None:
        bounds = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, float("inf"))
        lag = {str(b): sum(1 for x in counters["lags"] if x <= b) for b in bounds}
        stats_path.write_text(
            json.dumps(
                {
                    "at": time.monotonic(),
                    "sessions": counters["sessions"],
                    "failed": counters["failed"],
                    "lag": lag,
                }
            )
        )

    loop.add_signal_handler(signal.SIGUSR1, dump)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    async def command(reader: asyncio.StreamReader, writer: Any, line: bytes) -> bytes:
        writer.write(line)
        reply = await reader.readline()
        if not reply.startswith(b"+OK"):
            raise OSError(reply.decode(errors="replace"))
        return reply

    async def session(name: str, password: str) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            await reader.readline()
            if context is not None:
                await command(reader, writer, b"STLS\r\n")
                await writer.start_tls(context, server_hostname=host)
            await command(reader, writer, f"USER {name}\r\n".encode())
            await command(reader, writer, f"PASS {password}\r\n".encode())
            count = int((await command(reader, writer, b"STAT\r\n")).split()[1])
            for num in range(1, count + 1):
                await command(reader, writer, f"RETR {num}\r\n".encode())
                while (await reader.readline()) != b".\r\n":
                    pass
                await command(reader, writer, f"DELE {num}\r\n".encode())
            await command(reader, writer, b"QUIT\r\n")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def mailbox(index: int, name: str, password: str) -> None:
        phase = phase_of(f"mb{index:05d}", interval)
        due = time.time() + first_delay(phase, interval, len(users))
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, due - time.time()))
                return
            async with gate:
                counters["lags"].append(max(0.0, time.time() - due))
                try:
                    await session(name, password)
                    counters["sessions"] += 1
                except (OSError, ssl.SSLError):
                    counters["sessions"] += 1
                    counters["failed"] += 1
            due = next_slot(time.time(), phase, interval)

    tasks = [asyncio.create_task(mailbox(i, n, p)) for i, (n, p) in enumerate(users)]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.scale``: only the scale table. ``baseline SPEC``: the minimal poller."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["baseline"]:
        spec_path = Path(args[1])
        asyncio.run(
            _baseline(json.loads(spec_path.read_text()), spec_path.parent / "baseline-stats.json")
        )
        return 0
    from bench.run import Receiver  # the driver's receiver process

    if os.geteuid() != 0:
        _log("the scale benchmark needs root: the throwaway Dovecot switches users")
        return 2
    work = Path(tempfile.mkdtemp(prefix="popbridge-scale-", dir="/tmp"))
    work.chmod(0o755)
    dovecot = ScaleDovecot().start()
    receiver = Receiver()
    signal.signal(signal.SIGTERM, _interrupt)
    bench = ScaleBench(dovecot, receiver.url, receiver.stats, receiver.reset, work)
    try:
        scale = run_table(bench)
    finally:
        receiver.stop()
        dovecot.stop()
        shutil.rmtree(work, ignore_errors=True)
    scale["failures"] = bench.failures
    out = ROOT / "bench" / "results" / "scale-latest.json"
    out.write_text(json.dumps(scale, indent=2))
    print(render(scale))
    print(f"\n(results: {out.relative_to(ROOT)})")
    return 1 if bench.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
