"""Latency of ``mlbatch serve`` under an open-loop load, side by side with a naive FastAPI peer, on loopback.

Open loop: requests are sent at a constant arrival rate whatever the server
does, and each latency is measured from the request's *intended* send time,
so a stall delays every request scheduled behind it and shows in the tail
(no coordinated omission). The client is asyncio over raw keep-alive HTTP/1.1
connections (opened as needed, up to ``--connections``): a heavier client on
the same two cores would measure itself. Every step is bounded in requests
and seconds; unanswered requests at a step's deadline count as errors.

Measured, for single-row, 100-row and 1,000-row requests at several rates:
p50/p95/p99/p99.9 latency, achieved rate and error rate, for both servers,
and each server's own CPU time per request (from ``/proc``: what a request
costs the server whatever else shares the machine's cores);
cold start to ready (process start to the first ready probe); and the latency
around a hot swap (a promotion during a single-row load).

    python bench/bench_serve.py            # about 4 minutes
    python bench/bench_serve.py --seconds 2 --json bench-serve.json

The naive peer (``bench/naive_serve.py``) is a minimal FastAPI endpoint calling
the scikit-learn pipeline's ``predict_proba`` on a DataFrame of the rows, with
OpenMP capped at one thread (uncapped, its threads fight the server's own on
two cores, and it is slower still). MLflow's ``models serve`` is not measured
yet: it needs its own virtual environment, which this script does not build.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.champions import gated_version  # noqa: E402
from mlbatch.lake import Lake  # noqa: E402
from mlbatch.registry import Registry  # noqa: E402
from mlbatch.sampledata import SampleConfig, generate_day, write_sample  # noqa: E402
from mlbatch.settings import Settings  # noqa: E402
from mlbatch.specs import load_spec  # noqa: E402

KEY = "bench-key"
TRAIN_START = dt.date(2026, 1, 1)
#: (rows per request, rates for mlbatch, rates for the naive peer)
SHAPES = [
    (1, [100, 200, 300, 400, 600, 800], [50, 100, 150, 200, 300]),
    (100, [20, 50, 100], [20, 50, 100]),
    (1_000, [10, 20, 30], [10, 20, 30]),
]
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


# ---- the load generator ------------------------------------------------------------------------------
class Target:
    """One server: its process, where it listens, the path and headers of a request."""

    def __init__(self, name: str, pid: int, port: int, path: str, headers: dict[str, str]) -> None:
        self.name, self.pid, self.port, self.path, self.headers = name, pid, port, path, headers

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (``/proc/<pid>/stat``)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def request(self, rows: list[dict[str, Any]]) -> bytes:
        body = orjson.dumps({"rows": rows})
        head = [f"POST {self.path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
        head += [f"{k}: {v}" for k, v in self.headers.items()]
        head.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = _LENGTH.search(head)
    body = await reader.readexactly(int(match.group(1))) if match else b""
    return status, body


async def _step(
    port: int, request: bytes, rate: float, count: int, timeout: float, connections: int, on_time: Any = None
) -> dict[str, Any]:
    """Send ``count`` requests at ``rate``/s; latencies from each intended send time."""
    loop = asyncio.get_running_loop()
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    opened = 0
    latencies: list[float] = []
    sent_at: list[float] = []
    errors = 0

    async def one(intended: float) -> None:
        nonlocal opened, errors
        try:
            if idle.empty() and opened < connections:
                opened += 1
                conn = await asyncio.open_connection("127.0.0.1", port)
            else:
                conn = await idle.get()
            status, body = await _exchange(*conn, request)
            done = loop.time()
            idle.put_nowait(conn)
            if status != 200:
                errors += 1
                return
            latencies.append(done - intended)
            sent_at.append(intended - start)
            if on_time is not None:
                on_time(intended, done, body)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1

    start = loop.time() + 0.05
    tasks = []
    for i in range(count):
        intended = start + i / rate
        delay = intended - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(intended)))
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    errors += len(pending)
    elapsed = (max(sent_at) + max(latencies)) if latencies else float("nan")
    while not idle.empty():
        _, writer = idle.get_nowait()
        writer.close()
    return {
        "requests": count,
        "errors": errors,
        "error_rate": errors / count,
        "achieved_rate": len(latencies) / elapsed if latencies else 0.0,
        **_percentiles(latencies),
    }


def _percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {k: float("nan") for k in ("p50_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms")}
    values = np.asarray(latencies) * 1e3
    q = np.percentile(values, [50, 95, 99, 99.9])
    return {"p50_ms": q[0], "p95_ms": q[1], "p99_ms": q[2], "p999_ms": q[3], "max_ms": float(values.max())}


def run_step(target: Target, rows: list[dict[str, Any]], rate: float, seconds: float, connections: int) -> dict:
    count = max(1, int(rate * seconds))
    cpu = target.cpu_seconds()
    result = asyncio.run(_step(target.port, target.request(rows), rate, count, seconds + 10, connections))
    # the server's own CPU per request: what a step costs it whatever else the machine runs
    cpu_ms = (target.cpu_seconds() - cpu) * 1e3 / count
    return {"server": target.name, "rows": len(rows), "rate": rate, **result, "server_cpu_ms_per_request": cpu_ms}


# ---- servers -----------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(port: int, path: str, process: subprocess.Popen, deadline: float) -> float:
    """Seconds until ``path`` answers 200 (polled every few milliseconds)."""
    started = time.perf_counter()
    while time.perf_counter() - started < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                if conn.recv(64)[9:12] == b"200":
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"no 200 from {path} within {deadline}s")


def start_mlbatch(lake: Path, poll_seconds: float) -> tuple[subprocess.Popen, int, float]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBATCH_")}
    env.update(Settings(_env_file=None, storage_root=str(lake), models_dir=ROOT / "models").as_env())
    env["MLBATCH_SERVING__API_KEY_HASHES"] = __import__("hashlib").sha256(KEY.encode()).hexdigest()
    mlbatch = Path(sys.executable).with_name("mlbatch")
    command = [str(mlbatch), "serve", "churn", "--port", str(port), "--poll-seconds", str(poll_seconds)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, port, _wait(port, "/v2/health/ready", process, 120)


def start_naive(artifact: Path) -> tuple[subprocess.Popen, int, float]:
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(ROOT / "bench" / "naive_serve.py"), str(artifact), str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, port, _wait(port, "/health", process, 120)


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


# ---- set-up, swap, report ----------------------------------------------------------------------------
def prepare(lake: Path) -> dict[str, Any]:
    """Two versions of the example spec, each with its ONNX graph and gate; the first promoted."""
    settings = Settings(_env_file=None, storage_root=str(lake), models_dir=ROOT / "models")
    lake = Lake(settings)
    storage = lake.storage
    spec = load_spec(ROOT / "models" / "churn.yaml")
    days = spec.training.window_days
    write_sample(storage, SampleConfig(start=TRAIN_START, days=days + 1, rows_per_day=500))
    first = gated_version(lake, spec, TRAIN_START + dt.timedelta(days=days), promote=True)
    second = gated_version(lake, spec, TRAIN_START + dt.timedelta(days=days + 1), promote=False)
    artifact = lake / "naive-model.joblib"
    artifact.write_bytes(Registry(storage, spec.name).verified_file(first.version))
    rows = generate_day(dt.date(2026, 4, 1), 2_000, seed=11).select(spec.input_columns).to_pylist()
    rows = [r for r in rows if None not in r.values()][:1_000]  # complete rows: the naive peer has no null handling
    return {"first": first.version, "second": second.version, "artifact": artifact, "rows": rows, "gate": first.gate}


def swap_blip(
    lake: Path, target: Target, rows: list[dict[str, Any]], version: int, rate: float, seconds: float
) -> dict:
    """Single-row load at ``rate``; promote ``version`` a third of the way in; latency before and around the swap.

    Times are ``time.monotonic()`` (the event loop's clock): the promotion's
    end, and each answer's intended send time and arrival.
    """
    marks: list[tuple[float, float, int]] = []  # intended send time, arrival, version
    promoted: list[float] = []

    def record(intended: float, done: float, body: bytes) -> None:
        marks.append((intended, done, orjson.loads(body)["model_version"]))

    def promote() -> None:
        time.sleep(seconds / 3)
        Registry(Settings(_env_file=None, storage_root=str(lake)).storage(), "churn").promote(version, "bench", "bench")
        promoted.append(time.monotonic())

    thread = threading.Thread(target=promote)
    thread.start()
    count = int(rate * seconds)
    result = asyncio.run(_step(target.port, target.request(rows[:1]), rate, count, seconds + 10, 64, record))
    thread.join()
    first_new = min((done for _, done, v in marks if v == version), default=float("nan"))
    around = [done - sent for sent, done, _ in marks if first_new - 1 <= done <= first_new + 1]
    before = [done - sent for sent, done, _ in marks if done < promoted[0] - 0.1]
    return {
        "rate": rate,
        "errors": result["errors"],
        "swap_after_promotion_s": first_new - promoted[0],
        "before": _percentiles(before),
        "around_swap": _percentiles(around),
    }


def sustained(results: list[dict], server: str) -> float:
    """The highest single-row rate with p99 <= 50 ms, no error, and at least 95% of the rate achieved."""
    ok = [
        r["rate"]
        for r in results
        if r["server"] == server
        and r["rows"] == 1
        and r["errors"] == 0
        and r["p99_ms"] <= 50
        and r["achieved_rate"] >= 0.95 * r["rate"]
    ]
    return max(ok, default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per rate (default 5)")
    parser.add_argument("--connections", type=int, default=64, help="most connections the client opens")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    load_at_start = os.getloadavg()  # other work on the machine shares its cores with both servers and the client

    with tempfile.TemporaryDirectory(prefix="mlbatch-bench-serve-") as tmp:
        lake = Path(tmp) / "lake"
        print("training two versions with their ONNX graphs ...", file=sys.stderr)
        setup = prepare(lake)
        results: list[dict] = []
        mlbatch, port, cold = start_mlbatch(lake, poll_seconds=0.5)
        naive, naive_port, naive_cold = start_naive(setup["artifact"])
        targets = {
            "mlbatch": Target("mlbatch", mlbatch.pid, port, "/models/churn/predict", {"X-API-Key": KEY}),
            "naive": Target("naive", naive.pid, naive_port, "/predict", {}),
        }
        try:
            for target in targets.values():  # warm both: first requests pay imports and allocations
                run_step(target, setup["rows"][:1], 50, 1, args.connections)
            for rows, ours, theirs in SHAPES:
                for rate in sorted(set(ours) | set(theirs)):
                    for name, rates in (("mlbatch", ours), ("naive", theirs)):
                        if rate in rates:
                            r = run_step(targets[name], setup["rows"][:rows], rate, args.seconds, args.connections)
                            results.append(r)
                            print(_row(r), file=sys.stderr)
            blip = swap_blip(lake, targets["mlbatch"], setup["rows"], setup["second"], 200, max(6.0, args.seconds))
        finally:
            stop(mlbatch)
            stop(naive)

    report = {
        "machine": {"cores": os.cpu_count(), "load_average_at_start": load_at_start, "load_average": os.getloadavg()},
        "engine": "onnx",
        "gate": setup["gate"]["detail"],
        "cold_start_s": {"mlbatch": cold, "naive": naive_cold},
        "steps": results,
        "sustained_single_row_rate": {s: sustained(results, s) for s in targets},
        "server_cpu_ms_per_request": {
            s: {
                rows: min(r["server_cpu_ms_per_request"] for r in results if r["server"] == s and r["rows"] == rows)
                for rows, _, _ in SHAPES
            }
            for s in targets
        },
        "hot_swap": blip,
    }
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float))


def _row(r: dict) -> str:
    return (
        f"| {r['server']:<7} | {r['rows']:>5} | {r['rate']:>5.0f} | {r['achieved_rate']:>8.1f} | "
        f"{r['p50_ms']:>7.2f} | {r['p95_ms']:>7.2f} | {r['p99_ms']:>7.2f} | {r['p999_ms']:>8.2f} | "
        f"{100 * r['error_rate']:>6.2f}% | {r['server_cpu_ms_per_request']:>6.2f} |"
    )


def print_table(report: dict) -> None:
    print("| server  |  rows | rate/s | achieved |  p50 ms |  p95 ms |  p99 ms | p99.9 ms | errors | CPU ms |")
    print("|---------|------:|------:|---------:|--------:|--------:|--------:|---------:|-------:|-------:|")
    for r in report["steps"]:
        print(_row(r))
    cold, rate, blip = report["cold_start_s"], report["sustained_single_row_rate"], report["hot_swap"]
    cpu = report["server_cpu_ms_per_request"]
    for rows, _, _ in SHAPES:
        ours, theirs = cpu["mlbatch"][rows], cpu["naive"][rows]
        print(
            f"server CPU per {rows}-row request (least over its rates): mlbatch {ours:.2f} ms, naive {theirs:.2f} ms"
            f" ({theirs / ours:.1f}x)"
        )
    print(f"\ncold start to ready: mlbatch {cold['mlbatch']:.2f} s, naive {cold['naive']:.2f} s")
    ratio = rate["mlbatch"] / rate["naive"] if rate["naive"] else float("inf")
    print(
        f"highest single-row rate with p99 <= 50 ms and 0 errors: mlbatch {rate['mlbatch']:.0f}/s, "
        f"naive {rate['naive']:.0f}/s ({ratio:.1f}x)"
    )
    print(
        f"hot swap at {blip['rate']:.0f}/s: new version served {blip['swap_after_promotion_s']:.2f} s after the "
        f"promotion, {blip['errors']} errors; p99 before {blip['before']['p99_ms']:.2f} ms, "
        f"within 1 s of the swap {blip['around_swap']['p99_ms']:.2f} ms (max {blip['around_swap']['max_ms']:.2f})"
    )
    start, end = (
        ", ".join(f"{x:.1f}" for x in report["machine"][k]) for k in ("load_average_at_start", "load_average")
    )
    print(f"load average (1, 5, 15 min): {start} at the start, {end} at the end")


if __name__ == "__main__":
    main()
