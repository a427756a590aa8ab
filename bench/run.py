"""``make bench``: the bridge side by side with what users would use instead.

Starts a throwaway Dovecot (tests/dovecot.py, needs root) and a lean aiohttp receiver in its
own process (bench/receiver.py), then, for the deterministic ``small`` and ``mixed``
workloads (bench/workloads.py), each ``BENCH_REPEAT`` times on a fresh mailbox:

1. the bridge end to end: ``popbridge once`` as a subprocess, wall time from start to exit;
   the mailbox must end empty and the receiver must have every message exactly once
   (distinct ``webhook-id``). Also the time inside its sessions (the sum of the session log
   lines' own durations, connect to QUIT: the service's throughput without interpreter
   start-up), and the peak RSS (GNU time);
2. a raw-socket pipelined POP3 reader (bench/rawpop.py, retrieval only, in-process clock);
3. fetchmail with a curl MDA posting each message;
4. a naive poplib + email + urllib script (bench/naive.py), one message at a time.

Besides: our POP3 client alone (``Pop3Client.retr_many``) against the raw reader and
lock-step, parse-only throughput (bench/parse_bench.py), peak RSS for one 50 MB message
through ``build_payload`` and through the whole bridge, and the bridge's peak RSS draining
``mixed``.

Prints one table and writes it as JSON to bench/results/<UTC timestamp>.json and
bench/results/latest.json. Environment knobs:

- ``BENCH_REPEAT`` (3): runs per method and workload; medians are reported.
- ``BENCH_WORKLOADS`` (``small,mixed``).
- ``BENCH_SKIP``: comma-separated methods to leave out (``fetchmail``, ``naive``, ``raw``,
  ``client``, ``parse``, ``memory``, ``servers``, ``scale``).
- ``BENCH_SERVERS_COUNT`` (2000): messages per server in the servers-side-by-side run
  (bench/servers.py: Dovecot, Courier, mailutils).
- ``BENCH_SCALE`` (``500``): mailbox counts of the scale workload (bench/scale.py), e.g.
  ``500,2000,10000``; ``BENCH_SCALE_TLS``, ``BENCH_SCALE_INTERVAL`` and
  ``BENCH_SCALE_SECONDS`` are described there.
- ``BENCH_LARGE_MB`` (50): size of the single large message for the memory figure.
- ``BENCH_BRIDGE_MAILBOX``: JSON object merged into the bridge's mailbox config, for
  experiments such as ``{"delivery_concurrency": 16}`` (the default is the stock config).
- ``BENCH_PROFILE``: a directory; the bridge then runs once more per workload under
  cProfile and the ``.prof`` files are written there (not counted in the figures).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench import parse_bench
from bench.rawpop import raw_retrieve
from bench.servers import TARGET_RATIO, as_dicts, bench_servers, render_servers
from bench.workloads import WORKLOADS, large_message
from bridge.pop3 import Pop3Client
from tests.dovecot import Dovecot, Pop3User

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SECRET = "whsec_YmVuY2htYXJrLXNlY3JldC0zMi1ieXRlcy1sb25nISE="  # noqa: S105 - a bench-only key
TARGETS = {
    "small": {"msgs_per_s": 1500.0, "x_fetchmail": 15.0, "x_naive": 5.0},
    "mixed": {"mb_per_s": 50.0, "x_fetchmail": 10.0},
}
CLIENT_TARGET = 2 / 3  # Pop3Client.retr_many >= 2/3 of the raw pipelined reader
GNU_TIME = "/usr/bin/time"  # Debian package `time`; make bench installs it
MEMORY_TARGET = 4.0  # peak RSS growth <= 4x the largest message


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- processes


@dataclass
class Timed:
    """One subprocess run: wall seconds, exit code, peak RSS (KiB), CPU seconds, output."""

    seconds: float
    returncode: int
    maxrss_kib: int
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0


def run_timed(
    argv: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 600.0
) -> Timed:
    """Run a command; wall time from spawn to exit, and its rusage through ``os.wait4``.

    The peak RSS comes from GNU time (``/usr/bin/time -f %M``), which forks the command from
    its own small process: a child spawned straight from this (large) process inherits this
    process's RSS high-water mark at exec, so ``ru_maxrss`` from ``wait4`` would report the
    benchmark's own size, not the command's.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as peak,
    ):
        command = list(argv)
        if Path(GNU_TIME).exists():
            command = [GNU_TIME, "-f", "%M", "-o", peak.name, *command]
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=ROOT)  # noqa: S603
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        reported = peak.read().strip().splitlines()
        maxrss = int(reported[-1]) if reported and reported[-1].isdigit() else usage.ru_maxrss
        return Timed(
            seconds,
            proc.returncode,
            maxrss,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            usage.ru_utime + usage.ru_stime,
        )


class Receiver:
    """bench/receiver.py in its own process (its own core and GIL)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.receiver"],
            stdout=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("READY "):
            self.proc.kill()
            raise RuntimeError(f"the benchmark receiver did not start: {line!r}")
        self.url = line.split(" ", 1)[1]
        self.base = self.url.rsplit("/", 1)[0]

    def _call(self, method: str, path: str) -> dict[str, int]:
        request = urllib.request.Request(self.base + path, method=method)  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            result: dict[str, int] = json.loads(response.read())
            return result

    def reset(self) -> None:
        self._call("POST", "/_reset")

    def stats(self) -> dict[str, int]:
        return self._call("GET", "/_stats")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------- the contenders


@dataclass
class Bench:
    """Shared state of one benchmark run."""

    dovecot: Dovecot
    receiver: Receiver
    work: Path
    failures: list[str] = field(default_factory=list)

    def mailbox(self, messages: Sequence[bytes], list_factor: float = 1.0) -> Pop3User:
        user = self.dovecot.new_user()
        for raw in messages:
            listed = None if list_factor == 1.0 else int(len(raw) * list_factor)
            user.deliver(raw, listed_size=listed)
        return user

    def verify(self, label: str, user: Pop3User, expected: int, *, signed: bool = False) -> None:
        """The mailbox ended empty and the receiver saw every message exactly once."""
        left = user.count()
        stats = self.receiver.stats()
        problems = []
        if left:
            problems.append(f"{left} messages left on the server")
        if stats["distinct"] != expected or stats["duplicates"] or stats["requests"] != expected:
            problems.append(
                f"receiver got {stats['requests']} requests, {stats['distinct']} distinct, "
                f"{stats['duplicates']} duplicates; expected {expected} exactly once"
            )
        if signed and stats["with_signature"] != stats["requests"]:
            problems.append(f"only {stats['with_signature']} requests carried a signature")
        if problems:
            self.failures.append(f"{label}: " + "; ".join(problems))
            _log(f"  CHECK FAILED {label}: " + "; ".join(problems))

    def bridge_config(self, user: Pop3User, data_dir: Path) -> Path:
        box: dict[str, Any] = {
            "name": "bench",
            "host": self.dovecot.host,
            "port": self.dovecot.port,
            "tls": "none",
            "allow_insecure_auth": True,
            "username": user.name,
            "password": user.password,
            "webhooks": ["main"],
        }
        box.update(json.loads(os.environ.get("BENCH_BRIDGE_MAILBOX") or "{}"))
        config = {
            "data_dir": str(data_dir),
            "http": {"listen": "127.0.0.1:0"},
            # info: the session lines carry the sessions' own durations (the service's time)
            "log": {"level": "info", "format": "json"},
            "webhooks": {"main": {"url": self.receiver.url, "secret": SECRET}},
            "mailboxes": [box],
        }
        path = data_dir / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def bridge_argv(self, user: Pop3User) -> list[str]:
        data_dir = Path(tempfile.mkdtemp(prefix="bridge-", dir=self.work))
        config = self.bridge_config(user, data_dir)
        return [sys.executable, "-m", "bridge", "once", "-c", str(config)]

    def run_bridge(
        self, label: str, messages: Sequence[bytes], *, list_factor: float = 1.0
    ) -> Timed:
        user = self.mailbox(messages, list_factor)
        self.receiver.reset()
        timed = run_timed(self.bridge_argv(user))
        if timed.returncode != 0:
            self.failures.append(f"{label}: popbridge once exited {timed.returncode}")
            _log(f"  popbridge once exited {timed.returncode}: {timed.stdout[-2000:]}")
        self.verify(label, user, len(messages), signed=True)
        return timed

    def run_fetchmail(self, label: str, messages: Sequence[bytes]) -> Timed:
        user = self.mailbox(messages)
        self.receiver.reset()
        home = Path(tempfile.mkdtemp(prefix="fetchmail-", dir=self.work))
        rc = home / "fetchmailrc"
        rc.write_text(
            f"poll {self.dovecot.host} proto pop3 port {self.dovecot.port} auth password\n"
            f'  user "{user.name}" there with password "{user.password}" is root here\n'
            "  options nokeep fetchall sslproto ''\n"
            f'  mda "curl -sf -o /dev/null -X POST --data-binary @- {self.receiver.url}"\n'
        )
        rc.chmod(0o600)
        env = {**os.environ, "FETCHMAILHOME": str(home), "HOME": str(home)}
        argv = ["fetchmail", "-f", str(rc), "--nosyslog", "--nodetach", "-i", str(home / "ids")]
        timed = run_timed(argv, env=env)
        if timed.returncode not in (0, 1):  # 1: no mail
            self.failures.append(f"{label}: fetchmail exited {timed.returncode}")
            _log(f"  fetchmail exited {timed.returncode}: {timed.stderr[-2000:]}")
        self.verify(label, user, len(messages))
        return timed

    def run_naive(self, label: str, messages: Sequence[bytes]) -> Timed:
        user = self.mailbox(messages)
        self.receiver.reset()
        env = {**os.environ, "NAIVE_PASSWORD": user.password}
        argv = [
            sys.executable,
            "-m",
            "bench.naive",
            "--host",
            self.dovecot.host,
            "--port",
            str(self.dovecot.port),
            "--user",
            user.name,
            "--url",
            self.receiver.url,
        ]
        timed = run_timed(argv, env=env)
        if timed.returncode != 0:
            self.failures.append(f"{label}: naive script exited {timed.returncode}")
            _log(f"  naive exited {timed.returncode}: {timed.stderr[-2000:]}")
        self.verify(label, user, len(messages))
        return timed

    def run_raw(self, messages: Sequence[bytes], pipelined: bool = True) -> float:
        user = self.mailbox(messages)
        result = raw_retrieve(
            self.dovecot.host,
            self.dovecot.port,
            user.name,
            user.password,
            len(messages),
            pipelined=pipelined,
        )
        expected = sum(len(m) for m in messages)  # dot-stuffing can only add bytes
        if result.messages != len(messages) or not expected <= result.bytes <= expected * 1.01:
            self.failures.append(f"raw reader read {result.bytes} bytes, expected {expected}")
        return result.seconds

    def run_client(self, messages: Sequence[bytes], window: int) -> float:
        user = self.mailbox(messages)

        async def go() -> float:
            async with Pop3Client(self.dovecot.host, self.dovecot.port, tls="none") as pop:
                await pop.login(user.name, user.password, method="user", allow_insecure=True)
                started = time.perf_counter()
                count = 0
                async for _num, _raw in pop.retr_many(range(1, len(messages) + 1), window=window):
                    count += 1
                seconds = time.perf_counter() - started
            assert count == len(messages)
            return seconds

        return asyncio.run(go())


# ---------------------------------------------------------------------- figures


@dataclass
class Row:
    """One line of the table."""

    workload: str
    method: str
    seconds: float
    messages: int
    bytes: int
    note: str = ""
    samples: list[float] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float("inf")

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds > 0 else float("inf")


@dataclass
class Check:
    """One target: what was measured, the bound, pass or fail."""

    name: str
    value: float
    target: str
    passed: bool


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, Any]:
    """nproc, CPU model, Python version, kernel: for the results table."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    fetchmail = subprocess.run(
        ["fetchmail", "--version"],  # noqa: S607 - found on PATH, where make bench installs it
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "fetchmail": fetchmail[0] if fetchmail else None,
    }


def _repeat(label: str, times: int, one: Callable[[int], float]) -> list[float]:
    samples = []
    for i in range(times):
        seconds = one(i)
        samples.append(seconds)
        _log(f"  {label} run {i + 1}/{times}: {seconds:.3f} s")
    return samples


def session_seconds(log: str) -> float:
    """The summed ``duration`` of the bridge's ``session`` log lines (JSON, one per line)."""
    total = 0.0
    for line in log.splitlines():
        if '"session"' not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "session":
            total += float(event.get("duration", 0.0))
    return total


def bench_workload(
    b: Bench, name: str, repeat: int, skip: set[str], idle: Timed | None
) -> tuple[list[Row], dict[str, Any]]:
    """Every contender on one workload; rows plus extra figures (RSS, start-up)."""
    messages = WORKLOADS[name]()
    n, size = len(messages), sum(len(m) for m in messages)
    _log(f"{name}: {n} messages, {size / 1e6:.2f} MB")
    runs: dict[str, list[Timed]] = {"bridge": [], "fetchmail": [], "naive": []}
    raw: list[float] = []
    order = ["bridge"] + [m for m in ("fetchmail", "naive") if m not in skip]
    for i in range(repeat):  # interleaved, so slow phases of a noisy machine hit all alike
        for method in order:
            label = f"{name}/{method}#{i + 1}"
            runner = {"bridge": b.run_bridge, "fetchmail": b.run_fetchmail, "naive": b.run_naive}
            timed = runner[method](label, messages)
            runs[method].append(timed)
            _log(f"  {label}: {timed.seconds:.3f} s, peak RSS {timed.maxrss_kib / 1024:.0f} MiB")
        if "raw" not in skip:
            raw.append(b.run_raw(messages))
            _log(f"  {name}/raw#{i + 1}: {raw[-1]:.3f} s")

    rows: list[Row] = []
    bridge_s = [t.seconds for t in runs["bridge"]]
    rows.append(
        Row(
            name,
            "bridge: popbridge once, end to end",
            median(bridge_s),
            n,
            size,
            "wall time incl. interpreter start-up",
            bridge_s,
        )
    )
    extra: dict[str, Any] = {
        "messages": n,
        "bytes": size,
        "largest_message": max(len(m) for m in messages),
        "bridge_maxrss_kib": [t.maxrss_kib for t in runs["bridge"]],
        "bridge_cpu_seconds": [round(t.cpu_seconds, 3) for t in runs["bridge"]],
    }
    sessions = [session_seconds(t.stdout) for t in runs["bridge"]]
    if all(sessions):
        rows.append(
            Row(
                name,
                "bridge: in its sessions (service throughput)",
                median(sessions),
                n,
                size,
                "sum of the sessions' own durations (connect to QUIT): no interpreter start-up",
                sessions,
            )
        )
    if runs["fetchmail"]:
        s = [t.seconds for t in runs["fetchmail"]]
        rows.append(Row(name, "fetchmail + curl MDA", median(s), n, size, samples=s))
    if runs["naive"]:
        s = [t.seconds for t in runs["naive"]]
        rows.append(Row(name, "naive poplib + email + urllib", median(s), n, size, samples=s))
    if raw:
        rows.append(
            Row(
                name,
                "raw pipelined RETR (limit)",
                median(raw),
                n,
                size,
                "retrieval only, in-process clock",
                raw,
            )
        )
    baselines = {
        "fetchmail": next((r for r in rows if r.method.startswith("fetchmail")), None),
        "naive": next((r for r in rows if r.method.startswith("naive")), None),
        "raw": next((r for r in rows if r.method.startswith("raw")), None),
    }
    for row in rows:
        for key, base in baselines.items():
            if base is not None and base is not row:
                row.ratios[key] = base.seconds / row.seconds
    return rows, extra


def bench_client(b: Bench, repeat: int) -> list[Row]:
    """Pop3Client.retr_many over ``small`` against the raw reader, pipelined and lock-step."""
    messages = WORKLOADS["small"]()
    n, size = len(messages), sum(len(m) for m in messages)
    runs = {
        "raw pipelined RETR (limit)": lambda _i: b.run_raw(messages, pipelined=True),
        "raw lock-step RETR": lambda _i: b.run_raw(messages, pipelined=False),
        "Pop3Client.retr_many, window 32 (default)": lambda _i: b.run_client(messages, 32),
        f"Pop3Client.retr_many, window {n}": lambda _i: b.run_client(messages, n),
        "Pop3Client.retr_many, lock-step": lambda _i: b.run_client(messages, 1),
    }
    rows = []
    for method, one in runs.items():
        samples = _repeat(f"client/{method}", repeat, one)
        rows.append(Row("small", method, median(samples), n, size, "in-process clock", samples))
    raw, lockstep = rows[0], rows[1]
    for row in rows:
        if row is not raw:
            row.ratios["raw"] = raw.seconds / row.seconds
        if row is not lockstep:
            row.ratios["raw lock-step"] = lockstep.seconds / row.seconds
    return rows


def _memory_check(label: str, ratio: float) -> Check:
    """A peak-memory figure against the issue's bound (at most 4x the message size)."""
    return Check(label, ratio, f"<= {MEMORY_TARGET:.0f}x", ratio <= MEMORY_TARGET)


def evaluate(
    e2e: dict[str, list[Row]],
    client: list[Row],
    memory: dict[str, Any],
) -> list[Check]:
    """Every target of issue 8 (and the client target) as pass/fail."""
    checks: list[Check] = []
    for name, rows in e2e.items():
        targets = TARGETS.get(name, {})
        for bridge in rows[:2]:
            if not bridge.method.startswith("bridge"):
                continue
            what = "bridge" if bridge is rows[0] else "bridge in its sessions"
            if "msgs_per_s" in targets:
                t = targets["msgs_per_s"]
                ok = bridge.msgs_per_s >= t
                checks.append(Check(f"{name}: {what} msg/s", bridge.msgs_per_s, f">= {t:,.0f}", ok))
            if "mb_per_s" in targets:
                t = targets["mb_per_s"]
                ok = bridge.mb_per_s >= t
                checks.append(Check(f"{name}: {what} MB/s", bridge.mb_per_s, f">= {t:.0f}", ok))
            for key in ("fetchmail", "naive"):
                if f"x_{key}" in targets and key in bridge.ratios:
                    t = targets[f"x_{key}"]
                    ok = bridge.ratios[key] >= t
                    checks.append(
                        Check(f"{name}: {what} / {key}", bridge.ratios[key], f">= {t:.0f}x", ok)
                    )
    if client:
        default = client[2]
        checks.append(
            Check(
                "small: Pop3Client.retr_many / raw pipelined",
                default.ratios["raw"],
                f">= {CLIENT_TARGET:.2f}",
                default.ratios["raw"] >= CLIENT_TARGET,
            )
        )
    if "large" in memory:
        ratio = memory["large"]["ratio"]
        size = memory["large"]["size"] / 1e6
        label = f"build_payload {size:.0f} MB: peak RSS growth / message size"
        checks.append(_memory_check(label, ratio))
    if "bridge_large" in memory:
        ratio = memory["bridge_large"]["ratio"]
        size = memory["bridge_large"]["size"] / 1e6
        label = f"one {size:.0f} MB message: bridge peak RSS over idle / message size"
        checks.append(_memory_check(label, ratio))
    for key, what in (("bridge_honest", "honest LIST"), ("bridge_liar", "LIST 100x too small")):
        if key in memory:
            m = memory[key]
            label = (
                f"{m['count']} x {m['size'] / 1e6:.0f} MB, {what}: bridge peak RSS over idle "
                "/ largest message"
            )
            checks.append(_memory_check(label, m["ratio"]))
    if "bridge_mixed" in memory:
        ratio = memory["bridge_mixed"]["ratio"]
        label = "mixed drain: bridge peak RSS over idle / largest message"
        checks.append(_memory_check(label, ratio))
        if "warm_ratio" in memory["bridge_mixed"]:
            warm = memory["bridge_mixed"]["warm_ratio"]
            label = "mixed drain: bridge peak RSS over the small drain's / largest message"
            checks.append(_memory_check(label, warm))
    return checks


# ---------------------------------------------------------------------- output


def render(report: dict[str, Any]) -> str:
    """The results as a Markdown table (also what docs/benchmark.md quotes)."""
    lines = [
        f"popbridge benchmark, {report['date']}, {report['machine']['nproc']} x "
        f"{report['machine']['cpu']}, Python {report['machine']['python']}, "
        f"median of {report['repeat']} runs",
        "",
        "| workload | method | s | msg/s | MB/s | vs fetchmail | vs naive | vs raw |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['workload']} | {r['method']} | {r['seconds']:.3f} | {r['msgs_per_s']:,.0f} "
            f"| {r['mb_per_s']:.1f} | {_fmt_ratio(r, 'fetchmail')} | {_fmt_ratio(r, 'naive')} "
            f"| {_fmt_ratio(r, 'raw')} |"
        )
    if report["client"]:
        lines += [
            "",
            "| POP3 client alone (small) | s | msg/s | MB/s | vs raw | vs raw lock-step |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in report["client"]:
            lines.append(
                f"| {r['method']} | {r['seconds']:.3f} | {r['msgs_per_s']:,.0f} "
                f"| {r['mb_per_s']:.1f} | {_fmt_ratio(r, 'raw')} "
                f"| {_fmt_ratio(r, 'raw lock-step')} |"
            )
    parse = report.get("parse") or {}
    if parse:
        lines += [
            "",
            "| parse only (build_payload + JSON, best of rounds) | msg/s | MB/s |",
            "|---|---:|---:|",
        ]
        for name, p in parse.items():
            lines.append(f"| {name} | {p['msgs_per_s']:,.0f} | {p['mb_per_s']:.1f} |")
    mem = report.get("memory") or {}
    if mem:
        lines += ["", "| memory | figure |", "|---|---|"]
        if "large" in mem:
            m = mem["large"]
            lines.append(
                f"| build_payload + JSON, one {m['size'] / 1e6:.0f} MB message | peak RSS "
                f"+{m['peak_growth_bytes'] / 1e6:.0f} MB over idle = {m['ratio']:.2f}x |"
            )
        if "bridge_large" in mem:
            m = mem["bridge_large"]
            lines.append(
                f"| bridge draining one {m['size'] / 1e6:.0f} MB message ({m['seconds']:.2f} s) "
                f"| peak RSS {m['peak_kib'] / 1024:.0f} MiB, idle {m['idle_kib'] / 1024:.0f} "
                f"MiB: +{m['growth_bytes'] / 1e6:.0f} MB = {m['ratio']:.2f}x |"
            )
        for key, what in (("bridge_honest", "honest LIST"), ("bridge_liar", "LIST 100x small")):
            if key in mem:
                m = mem[key]
                lines.append(
                    f"| bridge draining {m['count']} x {m['size'] / 1e6:.0f} MB, {what} | peak "
                    f"RSS {m['peak_kib'] / 1024:.0f} MiB, idle {m['idle_kib'] / 1024:.0f} MiB: "
                    f"{m['ratio']:.2f}x the message |"
                )
        if "bridge_mixed" in mem:
            m = mem["bridge_mixed"]
            lines.append(
                f"| bridge draining mixed (largest message {m['largest'] / 1e6:.2f} MB) | peak "
                f"RSS {m['peak_kib'] / 1024:.0f} MiB, idle {m['idle_kib'] / 1024:.0f} MiB: "
                f"+{m['growth_bytes'] / 1e6:.1f} MB = {m['ratio']:.2f}x |"
            )
            if "warm_kib" in m:
                lines.append(
                    f"| same, over the small drain's peak (warm process) | peak RSS "
                    f"{m['peak_kib'] / 1024:.0f} MiB, small drain {m['warm_kib'] / 1024:.0f} "
                    f"MiB: +{m['warm_growth_bytes'] / 1e6:.1f} MB = {m['warm_ratio']:.2f}x |"
                )
    if report.get("scale"):
        from bench.scale import render as render_scale

        lines += ["", render_scale({**report["scale"], "checks": []})]
    lines += ["", "| target | measured | bound | result |", "|---|---:|---|---|"]
    for c in report["checks"]:
        value = f"{c['value']:,.2f}" if c["value"] < 100 else f"{c['value']:,.0f}"
        lines.append(
            f"| {c['name']} | {value} | {c['target']} | {'PASS' if c['passed'] else 'FAIL'} |"
        )
    if report["failures"]:
        lines += ["", "Correctness checks FAILED:"] + [f"- {f}" for f in report["failures"]]
    return "\n".join(lines)


def _fmt_ratio(row: dict[str, Any], key: str) -> str:
    value = row["ratios"].get(key)
    if value is None:
        return ""
    return f"{value:.1f}x" if value >= 1 else f"{value:.2f}x"


def _row_dict(row: Row) -> dict[str, Any]:
    data = asdict(row)
    data["msgs_per_s"] = row.msgs_per_s
    data["mb_per_s"] = row.mb_per_s
    return data


def write_results(report: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}.json"
    text = json.dumps(report, indent=2) + "\n"
    for target in (path, RESULTS / "latest.json"):
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(text)
        tmp.replace(target)
    return path


# ---------------------------------------------------------------------- main


def profile_bridge(b: Bench, workloads: Sequence[str], out_dir: Path) -> None:
    """One extra bridge run per workload under cProfile (not part of the figures)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in workloads:
        user = b.mailbox(WORKLOADS[name]())
        b.receiver.reset()
        argv = b.bridge_argv(user)
        prof = out_dir / f"bridge-{name}.prof"
        argv[1:3] = ["-m", "cProfile", "-o", str(prof), "-m", "bridge"]
        timed = run_timed(argv)
        _log(f"  profile {name}: {timed.seconds:.2f} s under cProfile -> {prof}")


def main() -> int:
    """Run everything, print the table, write the JSON; exit 1 if a correctness check failed."""
    repeat = _env_int("BENCH_REPEAT", 3)
    workloads = [w for w in os.environ.get("BENCH_WORKLOADS", "small,mixed").split(",") if w]
    skip = {s for s in os.environ.get("BENCH_SKIP", "").split(",") if s}
    large_mb = _env_int("BENCH_LARGE_MB", 50)
    started = time.monotonic()
    if os.geteuid() != 0:
        _log("make bench needs root: the throwaway Dovecot switches users (see TESTBED.md)")
        return 2
    if "fetchmail" not in skip and shutil.which("fetchmail") is None:
        _log("fetchmail is not installed: apt-get install fetchmail curl (or BENCH_SKIP=fetchmail)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="popbridge-bench-", dir="/tmp"))
    work.chmod(0o755)
    dovecot = Dovecot().start()
    receiver = Receiver()
    b = Bench(dovecot, receiver, work)
    e2e: dict[str, list[Row]] = {}
    extras: dict[str, Any] = {}
    client: list[Row] = []
    memory: dict[str, Any] = {}
    parse: dict[str, Any] = {}
    scale: dict[str, Any] = {}
    idle: Timed | None = None
    servers: list[dict[str, Any]] = []
    try:
        _log("bridge start-up: once over an empty mailbox")
        idles = [b.run_bridge(f"empty#{i + 1}", []) for i in range(repeat)]
        idle = sorted(idles, key=lambda t: t.seconds)[len(idles) // 2]
        _log(f"  empty once: {idle.seconds:.3f} s, peak RSS {idle.maxrss_kib / 1024:.0f} MiB")
        for name in workloads:
            e2e[name], extras[name] = bench_workload(b, name, repeat, skip, idle)
        if "servers" not in skip:
            _log("the bridge on each real POP3 server")
            servers = as_dicts(bench_servers(b, repeat, _env_int("BENCH_SERVERS_COUNT", 2000)))
        if "client" not in skip:
            _log("POP3 client alone (small)")
            client = bench_client(b, repeat)
        if "parse" not in skip:
            _log("parse only")
            for name in workloads:
                parse[name] = parse_bench.run_workload(WORKLOADS[name](), rounds=repeat)
        if "memory" not in skip:
            _log(f"memory: one {large_mb} MB message through build_payload")
            memory["large"] = parse_bench.measure_large(large_mb)
            if idle is not None:
                # The same size through the whole bridge: RETR, parse, POST, ledger, DELE.
                one = [large_message(large_mb * 1_000_000)]
                timed = b.run_bridge(f"large {large_mb} MB", one)
                growth = (timed.maxrss_kib - idle.maxrss_kib) * 1024
                memory["bridge_large"] = {
                    "size": len(one[0]),
                    "seconds": timed.seconds,
                    "peak_kib": timed.maxrss_kib,
                    "idle_kib": idle.maxrss_kib,
                    "growth_bytes": growth,
                    "ratio": growth / len(one[0]),
                }
                _log(
                    f"  bridge, one {large_mb} MB message: {timed.seconds:.2f} s, "
                    f"peak RSS {timed.maxrss_kib / 1024:.0f} MiB"
                )
            if idle is not None:
                # A server whose LIST understates sizes (Dovecot trusts the W= in the file
                # name) must not make whole pipelined batches of big messages sit in memory.
                liar_mb = _env_int("BENCH_LIAR_MB", 20)
                several = [large_message(liar_mb * 1_000_000)] * _env_int("BENCH_LIAR_COUNT", 8)
                for key, factor in (("honest", 1.0), ("liar", 0.01)):
                    _log(f"memory: {len(several)} x {liar_mb} MB, LIST sizes x {factor}")
                    timed = b.run_bridge(f"{key} sizes", several, list_factor=factor)
                    growth = (timed.maxrss_kib - idle.maxrss_kib) * 1024
                    memory[f"bridge_{key}"] = {
                        "count": len(several),
                        "size": len(several[0]),
                        "peak_kib": timed.maxrss_kib,
                        "idle_kib": idle.maxrss_kib,
                        "ratio": growth / len(several[0]),
                    }
                    _log(f"  peak RSS {timed.maxrss_kib / 1024:.0f} MiB")
        if "mixed" in extras:
            peak = int(median(extras["mixed"]["bridge_maxrss_kib"]))
            growth = (peak - idle.maxrss_kib) * 1024
            largest = extras["mixed"]["largest_message"]
            memory["bridge_mixed"] = {
                "peak_kib": peak,
                "idle_kib": idle.maxrss_kib,
                "growth_bytes": growth,
                "largest": largest,
                "ratio": growth / largest,
            }
            if "small" in extras:
                # A warm baseline: the same process after the same code paths ran on 2 KB
                # messages (pydantic schemas built, HTTP pool and SQLite cache in use), so
                # the growth is what message size costs, not first-use set-up.
                warm = int(median(extras["small"]["bridge_maxrss_kib"]))
                memory["bridge_mixed"].update(
                    warm_kib=warm,
                    warm_growth_bytes=(peak - warm) * 1024,
                    warm_ratio=(peak - warm) * 1024 / largest,
                )
        if os.environ.get("BENCH_PROFILE"):
            profile_bridge(b, workloads, Path(os.environ["BENCH_PROFILE"]))
        if "scale" not in skip:
            from bench import scale as scale_bench  # many idle mailboxes (issue 15)

            sb = scale_bench.ScaleBench(dovecot, receiver.url, receiver.stats, receiver.reset, work)
            scale = scale_bench.run_table(sb)
            b.failures.extend(sb.failures)
    finally:
        receiver.stop()
        dovecot.stop()
        shutil.rmtree(work, ignore_errors=True)

    checks = evaluate(e2e, client, memory)
    checks += [
        Check(
            f"servers: {r['server']} / Dovecot time",
            r["ratio"],
            f"<= {TARGET_RATIO:g}x",
            r["ratio"] <= TARGET_RATIO,
        )
        for r in servers
        if r["server"] != "dovecot"
    ]
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "repeat": repeat,
        "elapsed_seconds": round(time.monotonic() - started, 1),
        "bridge_startup": {
            "seconds": idle.seconds,
            "cpu_seconds": idle.cpu_seconds,
            "maxrss_kib": idle.maxrss_kib,
        },
        "rows": [_row_dict(r) for rows in e2e.values() for r in rows],
        "workloads": extras,
        "client": [_row_dict(r) for r in client],
        "parse": parse,
        "memory": memory,
        "servers": servers,
        "checks": [asdict(c) for c in checks] + scale.get("checks", []),
        "scale": scale,
        "failures": b.failures,
    }
    path = write_results(report)
    print(render(report))
    print("\n".join(render_servers(servers)))
    print(
        f"\n(results: {path.relative_to(ROOT)}, bench/results/latest.json; "
        f"{report['elapsed_seconds']:.0f} s)"
    )
    return 1 if b.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
