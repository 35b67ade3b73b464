"""What a hostile client costs the emulator and the model server (`make benchmark-limits`).

Starts a real emulator (`python -m emulator`) and a real model server (`python -m serving`,
tiny demo model) on loopback, sends each a 200 MB request body (streamed by the client, so
the client holds 1 MB at a time) and samples each server's resident memory every 10 ms
while it does. Prints the peak growth over the idle baseline, as a ratio of the body size,
and what each answered. Before the body limits the emulator took about 400 MB for such a
body (2x its size); now both refuse it after at most their limit.

    .venv/bin/python benchmarks/hostile_requests.py [--mb 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emulator.launcher import EmulatorProcess  # noqa: E402
from emulator.processes import free_port  # noqa: E402


def peak_growth(pid: int, send) -> tuple[int, httpx.Response | Exception]:
    """Run `send()` while sampling `pid`'s RSS; the peak growth in bytes and the answer."""
    proc = psutil.Process(pid)
    baseline = proc.memory_info().rss
    peak, done = baseline, threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        answer = send()
    except httpx.HTTPError as exc:  # a server may close the connection mid-body
        answer = exc
    time.sleep(0.2)
    done.set()
    sampler.join()
    return peak - baseline, answer


def body(mb: int):
    chunk = b"x" * 1_000_000
    yield b'{"instances": ["'
    for _ in range(mb):
        yield chunk
    yield b'"]}'


def describe(answer) -> str:
    if isinstance(answer, Exception):
        return f"connection closed ({type(answer).__name__})"
    return f"HTTP {answer.status_code} {answer.text[:90]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="body size in MB (default: 200)")
    args = parser.parse_args()
    size = args.mb * 1_000_000
    headers = {"content-type": "application/json"}
    with tempfile.TemporaryDirectory() as tmp:
        from serving.demo_model import build_demo_model

        model_dir = build_demo_model(Path(tmp) / "tiny", size="tiny")
        port = free_port()
        import subprocess

        server = subprocess.Popen(
            [sys.executable, "-m", "serving", "--model-dir", str(model_dir), "--host",
             "127.0.0.1", "--port", str(port)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            with EmulatorProcess(Path(tmp) / "emulator") as emu:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.2)
                rows = []
                for name, pid, url in (
                    ("emulator", emu.pid, f"{emu.url}/v1/projects/p/locations/l/endpoints"),
                    ("model server", server.pid, f"http://127.0.0.1:{port}/predict"),
                ):
                    started = time.monotonic()
                    growth, answer = peak_growth(
                        pid,
                        lambda url=url: httpx.post(
                            url, content=body(args.mb), headers=headers, timeout=120
                        ),
                    )
                    took = time.monotonic() - started
                    rows.append((name, growth, answer, took))
        finally:
            server.terminate()
            server.wait(30)
    print(f"{args.mb} MB request body, streamed by the client")
    for name, growth, answer, took in rows:
        print(
            f"  {name:<13} peak RSS growth {growth / 1e6:7.1f} MB "
            f"(x{growth / size:.3f} of the body) in {took:.1f}s; {describe(answer)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
