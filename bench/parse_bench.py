"""Parse-only benchmark: raw bytes -> Payload -> JSON bytes, on one core.

Prints messages/s and MB/s for the ``small`` and ``mixed`` workloads (bench/workloads.py)
and the peak resident memory for building and serialising one 50 MB message, measured in a
fresh subprocess as the growth of VmHWM over the process's RSS right after its imports.

    python -m bench.parse_bench [--rounds N] [--large-mb 50] [--json]

Targets (issue 4): >= 2,000 small msgs/s, >= 50 MB/s mixed, peak <= 4x the message size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.workloads import WORKLOADS, large_message
from bridge.mime import PayloadOptions, build_payload, payload_json

_FETCHED_AT = datetime(2024, 1, 1, tzinfo=UTC)


def run_workload(messages: list[bytes], rounds: int = 3) -> dict[str, float]:
    """Best of ``rounds`` passes over ``messages``: msgs/s and MB/s (10^6 bytes)."""
    total = sum(len(m) for m in messages)
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for index, raw in enumerate(messages):
            payload = build_payload(
                raw,
                mailbox="bench",
                uidl=str(index),
                webhook_id=f"w{index}",
                fetched_at=_FETCHED_AT,
            )
            payload_json(payload)
        best = min(best, time.perf_counter() - started)
    return {
        "messages": len(messages),
        "bytes": total,
        "seconds": best,
        "msgs_per_s": len(messages) / best,
        "mb_per_s": total / best / 1e6,
    }


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")  # pragma: no cover


def _rss_child(path: str) -> None:
    """Runs in the subprocess: idle RSS, then read + build + serialise, then peak RSS."""
    idle = _status_kib("VmRSS")
    raw = Path(path).read_bytes()
    payload = build_payload(
        raw,
        mailbox="bench",
        uidl="1",
        webhook_id="w1",
        fetched_at=_FETCHED_AT,
        options=PayloadOptions(),
    )
    body = payload_json(payload)
    peak = _status_kib("VmHWM")
    print(json.dumps({"idle_kib": idle, "peak_kib": peak, "size": len(raw), "json": len(body)}))


def measure_large(megabytes: int = 50) -> dict[str, float]:
    """Peak RSS growth for one message of ``megabytes`` MB, in a fresh interpreter."""
    raw = large_message(megabytes * 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "large.eml")
        Path(path).write_bytes(raw)
        del raw
        out = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "bench.parse_bench", "--rss-child", path],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    result = json.loads(out)
    growth = (result["peak_kib"] - result["idle_kib"]) * 1024
    return {
        "size": result["size"],
        "peak_growth_bytes": growth,
        "ratio": growth / result["size"],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures (as JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--large-mb", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        _rss_child(args.rss_child)
        return 0
    results: dict[str, dict[str, float]] = {}
    for name, make in WORKLOADS.items():
        results[name] = run_workload(make(), args.rounds)
        if not args.json:
            r = results[name]
            print(
                f"parse {name:5s}: {r['messages']:5.0f} msgs, {r['bytes'] / 1e6:6.2f} MB: "
                f"{r['msgs_per_s']:8.0f} msgs/s {r['mb_per_s']:7.1f} MB/s"
            )
    results["large"] = measure_large(args.large_mb)
    if args.json:
        print(json.dumps(results))
    else:
        r = results["large"]
        print(
            f"parse large: {r['size'] / 1e6:.1f} MB message, peak RSS +"
            f"{r['peak_growth_bytes'] / 1e6:.1f} MB = {r['ratio']:.2f}x the message size"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
