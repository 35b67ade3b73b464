"""Fixtures for the model server tests: the demo model, free ports, server processes.

Every server runs as a real `python -m serving` (or `deploytest serve`) subprocess on a free
127.0.0.1 port; each fixture checks on teardown that the process is gone and the port free.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 90.0  # generous: other suites may share the 2 cores


def free_port() -> int:
    """A port nobody listened on a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """True if a new listener could bind the port (TIME_WAIT leftovers do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class ServerProcess:
    """A model server subprocess with its log, URL and a checked shutdown."""

    def __init__(self, cmd: list[str], port: int, env: dict[str, str] | None = None):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def health(self) -> httpx.Response | None:
        """The health answer, or None while nothing listens yet."""
        try:
            return httpx.get(f"{self.url}/health", timeout=5)
        except httpx.TransportError:
            return None

    def wait_until(self, predicate, timeout: float = READY_TIMEOUT_S, what: str = "ready"):
        """Poll health until `predicate(response)` holds; fail with the log on the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.health()
            if response is not None and predicate(response):
                return response
            if self.proc.poll() is not None:
                pytest.fail(
                    f"server exited ({self.proc.returncode}) before {what}:\n{self.output()}"
                )
            time.sleep(0.05)
        pytest.fail(f"server not {what} within {timeout}s:\n{self.output()}")

    def wait_ready(self) -> None:
        self.wait_until(lambda r: r.status_code == 200)

    def terminate(self) -> None:
        """Ask the server to stop (SIGTERM) without waiting."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> int:
        """SIGTERM, wait, kill if stuck; then assert the process is gone and the port free."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        assert_gone(self.pid, self.port)
        self.log.close()
        return self.proc.returncode


def assert_gone(pid: int, port: int) -> None:
    """The process no longer exists (reaped) and nothing listens on its port."""
    assert not psutil.pid_exists(pid), f"server process {pid} is still there"
    deadline = time.monotonic() + 5
    while not port_is_free(port):
        assert time.monotonic() < deadline, f"port {port} is still taken"
        time.sleep(0.05)


def serving_cmd(model_dir: Path | str, port: int, *extra: str) -> list[str]:
    """`python -m serving` on loopback."""
    return [
        sys.executable,
        "-m",
        "serving",
        "--model-dir",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory) -> Path:
    """The tiny demo model, built once per session (a few seconds)."""
    from serving.demo_model import build_demo_model

    return build_demo_model(tmp_path_factory.mktemp("serving") / "tiny", size="tiny")


@pytest.fixture
def start_server():
    """Factory: start a server process; every one started is stopped and checked on teardown."""
    started: list[ServerProcess] = []

    def start(cmd: list[str], port: int, env: dict[str, str] | None = None) -> ServerProcess:
        server = ServerProcess(cmd, port, env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def session_servers(demo_model_dir):
    """Both shared servers, started together so their (CPU-bound) loading overlaps."""
    configs = {
        # Batching on; a 50 ms wait makes coalescing certain even on a busy machine.
        "batching": (
            "--max-batch-size",
            "32",
            "--max-batch-wait-ms",
            "50",
            "--max-new-tokens-cap",
            "24",
        ),
        # One generate call per request.
        "unbatched": ("--max-batch-size", "1"),
    }
    servers = {}
    try:
        for name, extra in configs.items():
            port = free_port()
            servers[name] = ServerProcess(serving_cmd(demo_model_dir, port, *extra), port)
        for server in servers.values():
            server.wait_ready()
        yield servers
    finally:
        for server in servers.values():
            server.terminate()  # both shut down at once
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="session")
def batching_server(session_servers):
    """max batch 32, wait 50 ms, max_new_tokens capped at 24."""
    return session_servers["batching"]


@pytest.fixture(scope="session")
def unbatched_server(session_servers):
    """`--max-batch-size 1`."""
    return session_servers["unbatched"]
