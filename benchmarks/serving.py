"""Benchmark dynamic batching in the model server (`make benchmark`).

Builds the `tiny` demo model in a temporary directory and starts the real server
(`python -m serving`) twice on loopback: one with batching, one with `--max-batch-size 1`.
For each concurrency it runs a closed loop of clients (each sends its next request when
the last one answers) with a fixed prompt set and fixed max_new_tokens for a fixed time,
alternating between the two servers in short rounds so that other load on the machine hits
both alike. It prints requests/s and latency percentiles, the batching/unbatched ratios,
and the latency batching adds at concurrency 1.

Acceptance (checked and printed): at the highest concurrency batching serves >= 4x the
requests/s of batch size 1 with the lower p95; at concurrency 1 it adds no more than the
configured batch wait. Exit code 1 if a target is missed. Both servers are stopped on any
exit, Ctrl-C included.

    .venv/bin/python benchmarks/serving.py [--duration 6] [--rounds 3] [--json FILE]

`--against vllm` measures instead our server (batching on) beside the real vLLM engine's
OpenAI server (its CPU build, `make vllm`; engines/vllm.py) on the same demo model, each
spoken to in its own API (loadtests/apis.py: `deploytest`, `openai-completions`), greedy,
the same prompts and max_new_tokens: requests/s, p95 and output tokens/s (a model may stop
at EOS, so tokens/s is the fair figure), and the ratios ours/vLLM, measured in one run.
No acceptance threshold: the README's guide quotes the figures.

    .venv/bin/python benchmarks/serving.py --against vllm [--duration 12] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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


class Connection:
    """A minimal HTTP/1.1 keep-alive client: on 2 shared cores, httpx's own CPU cost would
    be measured as server latency. Enough for this server's Content-Length answers."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, payload: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        self.writer.write(head.encode() + payload)
        response_head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(response_head[9:12])
        length = 0
        for line in response_head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def load(
    port: int,
    concurrency: int,
    duration: float,
    max_new_tokens: int,
    api: str = "deploytest",
    path: str = "/predict",
) -> dict:
    """Closed loop: `concurrency` clients for `duration` seconds, speaking `api`
    (loadtests/apis.py); returns latencies (ms) and the answers' output tokens."""
    from loadtests.apis import APIS

    adapter = APIS[api]
    latencies: list[float] = []
    tokens = errors = 0
    stop_at = time.perf_counter() + duration

    async def client_loop(worker: int) -> None:
        nonlocal errors, tokens
        connection = Connection("127.0.0.1", port)
        i = worker
        try:
            while time.perf_counter() < stop_at:
                body = adapter.body(PROMPTS[i % len(PROMPTS)], max_new_tokens, False)
                start = time.perf_counter()
                status, answer = await connection.post(path, json.dumps(body).encode())
                if status == 200:
                    latencies.append((time.perf_counter() - start) * 1000)
                    tokens += adapter.answer(json.loads(answer))[1] or 0
                else:
                    errors += 1
                i += concurrency
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(w) for w in range(concurrency)))
    wall = time.perf_counter() - started
    return {"latencies": latencies, "errors": errors, "wall_s": wall, "tokens": tokens}


def summarize(
    server: str, concurrency: int, runs: list[dict], calls: int, rows: int, wait_ms: float
) -> dict:
    """Pool the rounds of one (server, concurrency) cell."""
    latencies = [x for run in runs for x in run["latencies"]]
    wall = sum(run["wall_s"] for run in runs)
    return {
        "server": server,
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": sum(run["errors"] for run in runs),
        "rps": len(latencies) / wall,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "mean_ms": statistics.fmean(latencies),
        "generate_calls": calls,
        "mean_batch": rows / calls if calls else 0.0,
        # Server-side: how long, per request, batches were held open waiting for company.
        "batch_wait_ms_per_request": wait_ms / len(latencies) if latencies else 0.0,
    }


def run_cells(servers: dict[str, Server], args: argparse.Namespace) -> list[dict]:
    """Measure every (server, concurrency) cell in interleaved rounds.

    Other work on a shared machine comes and goes; alternating the servers in short rounds
    (ABBA order) spreads that noise over both instead of biasing whichever ran second.
    """
    for server in servers.values():
        # A short warm-up so the first round does not pay for lazy allocation.
        asyncio.run(load(server.port, max(args.concurrency), 1.0, args.max_new_tokens))
    cells = []
    names = list(servers)
    for concurrency in args.concurrency:
        runs: dict[str, list[dict]] = {name: [] for name in names}
        counts = {name: [0, 0, 0.0] for name in names}  # generate calls, rows, wait ms
        for round_no in range(args.rounds):
            for name in names if round_no % 2 == 0 else reversed(names):
                before = servers[name].stats()
                runs[name].append(
                    asyncio.run(
                        load(
                            servers[name].port,
                            concurrency,
                            args.duration / args.rounds,
                            args.max_new_tokens,
                        )
                    )
                )
                after = servers[name].stats()
                counts[name][0] += after["generate_calls"] - before["generate_calls"]
                counts[name][1] += after["instances"] - before["instances"]
                counts[name][2] += after["batch_wait_ms_total"] - before["batch_wait_ms_total"]
        for name in names:
            cell = summarize(name, concurrency, runs[name], *counts[name])
            cells.append(cell)
            print(
                f"  {name:9s} c={concurrency:<3d} {cell['rps']:7.1f} req/s  "
                f"p50 {cell['p50_ms']:6.1f} ms  p95 {cell['p95_ms']:6.1f} ms  "
                f"mean batch {cell['mean_batch']:.1f}",
                flush=True,
            )
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per cell")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32, help="batching server's max")
    parser.add_argument("--wait-ms", type=float, default=5.0, help="batching server's wait")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--against", choices=("unbatched", "vllm"), default="unbatched",
        help="compare batching with batch size 1 (default), or our server with vLLM",
    )  # fmt: skip
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    # Run as a script, this file's folder comes first on sys.path and its name would
    # shadow the `serving` package: put the repository root first.
    sys.path.insert(0, str(ROOT))
    from serving.demo_model import build_demo_model

    if args.against == "vllm":
        return against_vllm(args)

    configs = [
        ("batching", ["--max-batch-size", str(args.batch_size)]),
        ("unbatched", ["--max-batch-size", "1"]),
    ]
    try:
        with tempfile.TemporaryDirectory(prefix="deploytest-bench-") as tmp:
            print("building the tiny demo model ...", flush=True)
            model_dir = build_demo_model(Path(tmp) / "model", size="tiny")
            with contextlib.ExitStack() as stack:  # stops every server on any exit
                servers = {}
                for name, extra in configs:
                    extra = [*extra, "--max-batch-wait-ms", f"{args.wait_ms:g}"]
                    print(f"server {name}: {' '.join(extra)}", flush=True)
                    servers[name] = stack.enter_context(Server(model_dir, extra))
                for server in servers.values():
                    server.wait_ready()
                cells = run_cells(servers, args)
    except KeyboardInterrupt:
        print("interrupted: servers stopped", file=sys.stderr)
        return 130
    return report(cells, args)


def against_vllm(args: argparse.Namespace) -> int:
    """Our server (batching) and vLLM on the same demo model, interleaved rounds per
    concurrency; prints the table and the ratios ours/vLLM."""
    from engines.vllm import VllmServer
    from serving.demo_model import build_demo_model

    apis = {"deploytest": "deploytest", "vllm": "openai-completions"}  # loadtests/apis.py
    cells = []
    try:
        with tempfile.TemporaryDirectory(prefix="deploytest-bench-") as tmp:
            print("building the tiny demo model ...", flush=True)
            model_dir = build_demo_model(Path(tmp) / "model", size="tiny")
            extra = ["--max-batch-size", str(args.batch_size), "--max-batch-wait-ms",
                     f"{args.wait_ms:g}"]  # fmt: skip
            print("starting our server and vLLM (about 40 s) ...", flush=True)
            with Server(model_dir, extra) as ours, VllmServer(model_dir, Path(tmp) / "v") as v:
                ours.wait_ready()
                ports = {"deploytest": ours.port, "vllm": v.port}
                paths = {"deploytest": "/predict", "vllm": v.spec.predict_route}
                for name in ports:  # warm-up
                    asyncio.run(load(ports[name], 4, 1.0, args.max_new_tokens, apis[name],
                                     paths[name]))  # fmt: skip
                for concurrency in args.concurrency:
                    runs = {name: [] for name in ports}
                    for round_no in range(args.rounds):
                        order = list(ports) if round_no % 2 == 0 else list(ports)[::-1]
                        for name in order:
                            runs[name].append(asyncio.run(load(
                                ports[name], concurrency, args.duration / args.rounds,
                                args.max_new_tokens, apis[name], paths[name],
                            )))  # fmt: skip
                    for name, pooled in runs.items():
                        cell = summarize(name, concurrency, pooled, 0, 0, 0.0)
                        wall = sum(run["wall_s"] for run in pooled)
                        cell["tokens_per_s"] = sum(run["tokens"] for run in pooled) / wall
                        cells.append(cell)
                        print(f"  {name:10s} c={concurrency:<3d} {cell['rps']:7.1f} req/s  "
                              f"p95 {cell['p95_ms']:7.1f} ms  {cell['tokens_per_s']:8.1f} "
                              "tokens/s", flush=True)  # fmt: skip
    except KeyboardInterrupt:
        print("interrupted: servers stopped", file=sys.stderr)
        return 130
    by = {(c["server"], c["concurrency"]): c for c in cells}
    print("\n| concurrency | ours req/s | vLLM req/s | ours p95 ms | vLLM p95 ms | "
          "ours tokens/s | vLLM tokens/s | tokens/s ours/vLLM | p95 ours/vLLM |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    ratios = {}
    for c in args.concurrency:
        o, v = by[("deploytest", c)], by[("vllm", c)]
        ratios[c] = {"tokens_per_s": o["tokens_per_s"] / v["tokens_per_s"],
                     "p95": o["p95_ms"] / v["p95_ms"], "rps": o["rps"] / v["rps"]}  # fmt: skip
        print(f"| {c} | {o['rps']:.1f} | {v['rps']:.1f} | {o['p95_ms']:.0f} | "
              f"{v['p95_ms']:.0f} | {o['tokens_per_s']:.0f} | {v['tokens_per_s']:.0f} | "
              f"x{ratios[c]['tokens_per_s']:.2f} | x{ratios[c]['p95']:.2f} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"cells": cells, "ratios": ratios}, indent=2))
    return 0 if all(c["errors"] == 0 for c in cells) else 1


def _interrupt(signum, frame) -> None:
    """SIGTERM (e.g. from CI) unwinds like Ctrl-C, through the servers' context managers."""
    raise KeyboardInterrupt


def report(cells: list[dict], args: argparse.Namespace) -> int:
    """Print the table and the acceptance checks; write JSON if asked; 0 if all pass."""
    by = {(c["server"], c["concurrency"]): c for c in cells}
    print()
    print(
        "| server | concurrency | req/s | p50 ms | p95 ms | mean batch "
        "| batch wait ms/req | errors |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in cells:
        print(
            f"| {c['server']} | {c['concurrency']} | {c['rps']:.1f} | {c['p50_ms']:.1f} | "
            f"{c['p95_ms']:.1f} | {c['mean_batch']:.2f} | "
            f"{c['batch_wait_ms_per_request']:.2f} | {c['errors']} |"
        )
    print()
    ratios = {}
    for concurrency in args.concurrency:
        b, u = by[("batching", concurrency)], by[("unbatched", concurrency)]
        ratios[concurrency] = {
            "rps_ratio": b["rps"] / u["rps"],
            "p95_ratio": b["p95_ms"] / u["p95_ms"],
            "p50_added_ms": b["p50_ms"] - u["p50_ms"],
            "batch_wait_ms_per_request": b["batch_wait_ms_per_request"],
        }
        r = ratios[concurrency]
        print(
            f"c={concurrency:<3d} batching/unbatched: req/s x{r['rps_ratio']:.2f}, "
            f"p95 x{r['p95_ratio']:.2f}, p50 {r['p50_added_ms']:+.1f} ms, "
            f"server-side batch wait {r['batch_wait_ms_per_request']:.2f} ms/request"
        )
    top, low = max(args.concurrency), min(args.concurrency)
    checks = {
        f"c={top}: batching req/s >= 4x unbatched": ratios[top]["rps_ratio"] >= 4,
        f"c={top}: batching p95 lower": ratios[top]["p95_ratio"] < 1,
        f"c={low}: batching adds <= {args.wait_ms:g} ms (p50 vs unbatched)": ratios[low][
            "p50_added_ms"
        ]
        <= args.wait_ms,
        f"c={low}: server-side batch wait <= {args.wait_ms:g} ms/request": ratios[low][
            "batch_wait_ms_per_request"
        ]
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
