"""Benchmark the load generator: is the client ever the bottleneck?

One Locust process (real Locust, headless, a subprocess) runs, in turn, against the same
trivial endpoint on loopback:

    plain         Locust's plain `HttpUser` streaming the same answer the usual way
                  (`stream=True`, `iter_lines()`, `json.loads` per chunk): like for like
    plain-nostream  plain `HttpUser`, one non-streaming POST per request (less work than
                  ours: no stream, no per-chunk parsing), printed for reference
    ours          loadtests/locustfile.py with `--stream` and every LLM metric on (TTFT, ITL,
                  TPOT, goodput targets, the LLM report rows)
    ours-openai   the same with `--api openai-completions` (vLLM's body and chunk rules,
                  tokens from the final usage chunk), printed as its own ratio

The endpoint is a tiny asyncio server in a process of its own that answers at once, with a
canned predict answer or a canned 8-token SSE stream, so the client is what limits the rate.
Each side runs closed loop with the same users for the same time; rounds alternate so other
load on the machine hits both alike. Printed: requests/s of each, the ratio ours/plain
(measured in one run), and the load generator's CPU per request.

Acceptance: ours >= 3.5x plain, both streaming (exit 1 otherwise). The ratio to the
non-streaming plain user is printed beside it: on a machine where the endpoint shares the
CPU with the client, it is the smaller one (see README).

    .venv/bin/python benchmarks/locust_client.py [--duration 6] [--rounds 2] [--users 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 3.5
TOKENS = 8
PLAIN = json.dumps({"predictions": [{"generated_text": "x" * 40, "output_tokens": TOKENS}]})


def _sse() -> bytes:
    chunks = [
        "data: "
        + json.dumps({"object": "text_completion", "choices": [{"index": 0, "text": f" t{i}"}]})
        + "\n\n"
        for i in range(TOKENS)
    ]
    usage = {"choices": [], "usage": {"completion_tokens": TOKENS}}
    chunks += ["data: " + json.dumps(usage) + "\n\n", "data: [DONE]\n\n"]
    return "".join(f"{len(c):x}\r\n{c}\r\n" for c in chunks).encode() + b"0\r\n\r\n"


def _serve(port: int) -> None:
    """A keep-alive HTTP/1.1 server that answers every POST at once (runs in a child)."""
    stream = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    stream += b"transfer-encoding: chunked\r\n\r\n" + _sse()
    plain = (
        f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        f"content-length: {len(PLAIN)}\r\n\r\n{PLAIN}"
    ).encode()

    class Answer(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buffer = transport, b""

        def data_received(self, data):
            self.buffer += data
            while b"\r\n\r\n" in self.buffer:
                head, _, rest = self.buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if len(rest) < length:
                    return
                body, self.buffer = rest[:length], rest[length:]
                self.transport.write(stream if b'"stream": true' in body else plain)
                # (both our server's and the OpenAI completions stream: same chunk shape)

    async def main():
        server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _locust(locustfile: Path, host: str, users: int, seconds: int, out: Path, env: dict):
    """(requests/s, client CPU ms per request) of one headless Locust run."""
    cmd = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", host,
        "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--only-summary",
        "--json-file", str(out / "stats"), "--exit-code-on-error", "0", "--stop-timeout", "5",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    ps = psutil.Process(proc.pid)
    cpu = 0.0
    try:
        while proc.poll() is None:
            try:
                times = ps.cpu_times()
                cpu = times.user + times.system
            except psutil.Error:
                break
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    entries = json.loads((out / "stats.json").read_text())
    requests = [e for e in entries if e.get("method") != "LLM"]
    count = sum(e["num_requests"] for e in requests)
    failures = sum(e["num_failures"] for e in requests)
    if failures:
        raise SystemExit(f"{locustfile.name}: {failures} of {count} requests failed")
    start = min(e["start_time"] for e in requests)
    end = max(e["last_request_timestamp"] for e in requests)
    return count / (end - start), cpu * 1000 / max(count, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=6, help="seconds per run (default 6)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of all (default 2)")
    parser.add_argument("--users", type=int, default=16, help="closed-loop users (default 16)")
    parser.add_argument("--json", default="", help="also write the results to this file")
    args = parser.parse_args(argv)

    port = _free_port()
    host = f"http://127.0.0.1:{port}"
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(port,), daemon=True)
    server.start()
    try:
        deadline = time.monotonic() + 10
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if time.monotonic() > deadline:
                raise SystemExit("the trivial endpoint did not start")
            time.sleep(0.05)
        base = {k: v for k, v in os.environ.items() if not k.startswith("DEPLOYTEST_")}
        plain_env = {
            **base,
            "VERTEX_AI_ENDPOINT_HOST": host,
            "VERTEX_AI_ENDPOINT_PATH": "/predict",
            # The plain file takes a token in on_start; the offline fixture is not needed
            # here, so give google.auth.default() nothing to find: it is replaced below.
        }
        ours_env = {
            **base,
            "DEPLOYTEST_STREAM": "true",
            "DEPLOYTEST_MAX_NEW_TOKENS": str(TOKENS),
            "DEPLOYTEST_SLO_TTFT_MS": "1000",
            "DEPLOYTEST_SLO_TPOT_MS": "100",
        }
        openai_env = {**ours_env, "DEPLOYTEST_API": "openai-completions"}
        results: dict[str, list[tuple[float, float]]] = {
            "plain": [], "plain-nostream": [], "ours": [], "ours-openai": []
        }  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            plain_file = Path(tmp) / "plain_locustfile.py"
            plain_file.write_text(_PLAIN_LOCUSTFILE)
            stream_file = Path(tmp) / "plain_stream_locustfile.py"
            stream_file.write_text(_PLAIN_STREAM_LOCUSTFILE)
            for round_ in range(args.rounds):
                for name, file, env in (
                    ("plain", stream_file, plain_env),
                    ("plain-nostream", plain_file, plain_env),
                    ("ours", ROOT / "loadtests" / "locustfile.py", ours_env),
                    ("ours-openai", ROOT / "loadtests" / "locustfile.py", openai_env),
                ):
                    out = Path(tmp) / f"{name}{round_}"
                    out.mkdir()
                    rps, cpu = _locust(file, host, args.users, args.duration, out, env)
                    results[name].append((rps, cpu))
                    print(f"round {round_ + 1} {name:>14}: {rps:8.1f} requests/s, "
                          f"client CPU {cpu:.3f} ms/request", flush=True)  # fmt: skip
    finally:
        server.terminate()
        server.join(5)
    rps = {name: sum(r for r, _ in rows) / args.rounds for name, rows in results.items()}
    cpu = {name: sum(c for _, c in rows) / args.rounds for name, rows in results.items()}
    ratio = rps["ours"] / rps["plain"]
    summary = {
        "rps": rps,
        "client_cpu_ms_per_request": cpu,
        "ratio": ratio,
        "ratio_openai_completions": rps["ours-openai"] / rps["plain"],
        "ratio_to_nonstreaming_plain": rps["ours"] / rps["plain-nostream"],
        "users": args.users,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(summary, indent=2))
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    print(f"{verdict}: one Locust process, streaming + LLM metrics: {ratio:.2f}x the requests/s "
          f"of plain HttpUser streaming (target >= {TARGET_RATIO}x); "
          f"{summary['ratio_to_nonstreaming_plain']:.2f}x plain non-streaming; "
          f"--api openai-completions: {summary['ratio_openai_completions']:.2f}x")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0 if ratio >= TARGET_RATIO else 1


# Locust's plain HttpUser, as a usual locustfile posts to a predict path (no token: the
# trivial endpoint has no auth, and a token server would only add noise).
_PLAIN_LOCUSTFILE = """
import os

from locust import HttpUser, task


class PlainUser(HttpUser):
    host = os.environ["VERTEX_AI_ENDPOINT_HOST"]

    @task
    def predict(self):
        self.client.post(
            os.environ["VERTEX_AI_ENDPOINT_PATH"],
            json={"instances": [{"text": "Why is the sky blue?"}], "parameters": {}},
        )
"""

# The same user streaming the answer the usual way: requests' iter_lines and json.loads.
_PLAIN_STREAM_LOCUSTFILE = """
import json
import os

from locust import HttpUser, task


class PlainStreamUser(HttpUser):
    host = os.environ["VERTEX_AI_ENDPOINT_HOST"]

    @task
    def predict(self):
        body = {"instances": [{"text": "Why is the sky blue?"}], "stream": True}
        with self.client.post(
            os.environ["VERTEX_AI_ENDPOINT_PATH"], json=body, stream=True, catch_response=True
        ) as response:
            for line in response.iter_lines():
                if line.startswith(b"data: ") and line != b"data: [DONE]":
                    json.loads(line[6:])
"""

if __name__ == "__main__":
    sys.exit(main())
