"""Benchmark dynamic batching in the model server (`make benchmark`).

Builds the `tiny` demo model in a temporary directory, then runs the real server
(`python -m serving`) twice, one after the other, on loopback: once with batching and once
with `--max-batch-size 1`. For each concurrency it runs a closed loop of clients (each sends
its next request when the last one answers) with a fixed prompt set and fixed
max_new_tokens for a fixed time, and prints requests/s and latency percentiles, the
batching/unbatched ratios and the latency batching adds at concurrency 1.

Acceptance (checked and printed): at the highest concurrency batching serves >= 4x the
requests/s of batch size 1 with the lower p95; at concurrency 1 it adds no more than the
configured batch wait. Exit code 1 if a target is missed. Both servers are stopped on any
exit, Ctrl-C included.

    .venv/bin/python benchmarks/serving.py [--duration 6] [--json results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [
    "the model endpoint answers",
    "hello world",
    "quick brown fox jumps over the lazy dog and the",
    "latency percentile throughput report for the load test",
    "deploy a model to a vertex endpoint",
    "cleanup undeploy delete operation",
    "gpu quota region replica machine accelerator traffic split",
    "a prompt",
]


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class Server:
    """A `python -m serving` subprocess that is always stopped (context manager)."""

    def __init__(self, model_dir: Path, extra: list[str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()
        cmd = [sys.executable, "-m", "serving", "--model-dir", str(model_dir)]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), *extra]
        # Own session: a terminal's Ctrl-C reaches only us, and we stop the server in order.
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout}s: {self.output()}")

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/stats", timeout=5).json()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


async def load(url: str, concurrency: int, duration: float, max_new_tokens: int) -> dict:
    """Closed-loop load: `concurrency` clients for `duration` seconds; latency stats in ms."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        stop_at = time.perf_counter() + duration

        async def client_loop(worker: int) -> None:
            nonlocal errors
            i = worker
            while time.perf_counter() < stop_at:
                body = {
                    "instances": [{"text": PROMPTS[i % len(PROMPTS)]}],
                    "parameters": {"max_new_tokens": max_new_tokens},
                }
                start = time.perf_counter()
                response = await client.post("/predict", json=body)
                elapsed = time.perf_counter() - start
                if response.status_code == 200:
                    latencies.append(elapsed * 1000)
                else:
                    errors += 1
                i += concurrency

        started = time.perf_counter()
        await asyncio.gather(*(client_loop(w) for w in range(concurrency)))
        wall = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / wall,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "mean_ms": statistics.fmean(latencies),
    }


def run_server_cells(name: str, server: Server, args: argparse.Namespace) -> list[dict]:
    server.wait_ready()
    # A short warm-up so the first cell does not pay for lazy allocation.
    asyncio.run(load(server.url, max(args.concurrency), 1.0, args.max_new_tokens))
    cells = []
    for concurrency in args.concurrency:
        before = server.stats()
        result = asyncio.run(load(server.url, concurrency, args.duration, args.max_new_tokens))
        after = server.stats()
        calls = after["generate_calls"] - before["generate_calls"]
        rows = after["instances"] - before["instances"]
        result.update(
            server=name,
            concurrency=concurrency,
            generate_calls=calls,
            mean_batch=rows / calls if calls else 0.0,
        )
        cells.append(result)
        print(
            f"  {name:9s} c={concurrency:<3d} {result['rps']:7.1f} req/s  "
            f"p50 {result['p50_ms']:6.1f} ms  p95 {result['p95_ms']:6.1f} ms  "
            f"mean batch {result['mean_batch']:.1f}",
            flush=True,
        )
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32, help="batching server's max")
    parser.add_argument("--wait-ms", type=float, default=5.0, help="batching server's wait")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    # Run as a script, this file's folder comes first on sys.path and its name would
    # shadow the `serving` package: put the repository root first.
    sys.path.insert(0, str(ROOT))
    from serving.demo_model import build_demo_model

    configs = [
        ("batching", ["--max-batch-size", str(args.batch_size)]),
        ("unbatched", ["--max-batch-size", "1"]),
    ]
    cells: list[dict] = []
    try:
        with tempfile.TemporaryDirectory(prefix="deploytest-bench-") as tmp:
            print("building the tiny demo model ...", flush=True)
            model_dir = build_demo_model(Path(tmp) / "model", size="tiny")
            for name, extra in configs:
                extra = [*extra, "--max-batch-wait-ms", str(args.wait_ms)]
                print(f"server {name}: {' '.join(extra)}", flush=True)
                with Server(model_dir, extra) as server:  # stopped on any exit
                    cells += run_server_cells(name, server, args)
    except KeyboardInterrupt:
        print("interrupted: servers stopped", file=sys.stderr)
        return 130
    return report(cells, args)


def _interrupt(signum, frame) -> None:
    """SIGTERM (e.g. from CI) unwinds like Ctrl-C, through the servers' context managers."""
    raise KeyboardInterrupt


def report(cells: list[dict], args: argparse.Namespace) -> int:
    """Print the table and the acceptance checks; write JSON if asked; 0 if all pass."""
    by = {(c["server"], c["concurrency"]): c for c in cells}
    print()
    print("| server | concurrency | req/s | p50 ms | p95 ms | mean batch | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in cells:
        print(
            f"| {c['server']} | {c['concurrency']} | {c['rps']:.1f} | {c['p50_ms']:.1f} | "
            f"{c['p95_ms']:.1f} | {c['mean_batch']:.2f} | {c['errors']} |"
        )
    print()
    ratios = {}
    for concurrency in args.concurrency:
        b, u = by[("batching", concurrency)], by[("unbatched", concurrency)]
        ratios[concurrency] = {
            "rps_ratio": b["rps"] / u["rps"],
            "p95_ratio": b["p95_ms"] / u["p95_ms"],
            "p50_added_ms": b["p50_ms"] - u["p50_ms"],
        }
        r = ratios[concurrency]
        print(
            f"c={concurrency:<3d} batching/unbatched: req/s x{r['rps_ratio']:.2f}, "
            f"p95 x{r['p95_ratio']:.2f}, p50 {r['p50_added_ms']:+.1f} ms"
        )
    top, low = max(args.concurrency), min(args.concurrency)
    checks = {
        f"c={top}: batching req/s >= 4x unbatched": ratios[top]["rps_ratio"] >= 4,
        f"c={top}: batching p95 lower": ratios[top]["p95_ratio"] < 1,
        f"c={low}: batching adds <= {args.wait_ms:g} ms (p50)": ratios[low]["p50_added_ms"]
        <= args.wait_ms,
        "no errors": all(c["errors"] == 0 for c in cells),
    }
    print()
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "settings": {
                        "duration_s": args.duration,
                        "max_new_tokens": args.max_new_tokens,
                        "batch_size": args.batch_size,
                        "wait_ms": args.wait_ms,
                        "cpus": os.cpu_count(),
                    },
                    "cells": cells,
                    "ratios": {str(k): v for k, v in ratios.items()},
                    "checks": checks,
                },
                indent=2,
            )
        )
        print(f"wrote {args.json}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
