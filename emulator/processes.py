"""Model-server processes: a deployed model's container command run on this machine.

Each process gets its own process group (session), a free loopback port in
`AIP_HTTP_PORT`, and a log file under `<state-dir>/logs/`. Stopping terminates the whole
group and kills it after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

GRACE_S = 5.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def local_storage_path(uri: str, gcs_dir: Path) -> str:
    """Map `gs://bucket/path` to `<gcs_dir>/bucket/path`; other URIs pass through."""
    if uri.startswith("gs://"):
        return str(gcs_dir / uri[len("gs://") :])
    return uri


@dataclass
class ModelProcess:
    """A running (or adopted) model-server process."""

    pid: int
    create_time: float
    port: int
    log_path: Path
    health_route: str
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def alive(self) -> bool:
        """True while the process exists (and is not a zombie)."""
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            proc = psutil.Process(self.pid)
            return proc.create_time() == self.create_time and proc.status() != "zombie"
        except psutil.Error:
            return False

    def exit_code(self) -> int | None:
        """The exit status if we started it and it has exited."""
        return self.popen.poll() if self.popen is not None else None

    def healthy(self, timeout: float = 2.0) -> bool:
        """True when the health route answers 200."""
        url = f"http://127.0.0.1:{self.port}{self.health_route}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def stop(self, grace_s: float = GRACE_S) -> None:
        """SIGTERM the process group, SIGKILL it after `grace_s`; reap our child."""
        from procgroup import stop_group

        if self.popen is not None:
            stop_group(self.popen, grace_s)
            return
        try:
            leader = psutil.Process(self.pid)
            if leader.create_time() != self.create_time:
                return  # the pid was reused: not ours
        except psutil.Error:
            # a dead leader: SIGKILL its group's stray members
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            return
        stop_group(leader, grace_s)

    def log_tail(self, max_chars: int = 2000) -> str:
        """The last characters of the process's log."""
        return tail(self.log_path, max_chars)


def tail(path: Path, max_chars: int = 2000) -> str:
    """The last `max_chars` characters of a file ('' if missing)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_chars * 2))
            return fh.read().decode("utf-8", "replace")[-max_chars:]
    except OSError:
        return ""


def start(
    command: list[str], env: dict[str, str], port: int, log_path: Path, health_route: str
) -> ModelProcess:
    """Start `command` in its own process group with `env` added to ours; log to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **env}
    with open(log_path, "ab") as log:
        log.write(f"--- start {time.strftime('%Y-%m-%dT%H:%M:%S')} {command}\n".encode())
        log.flush()
        popen = subprocess.Popen(
            command,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.Error:
        create_time = 0.0
    return ModelProcess(popen.pid, create_time, port, log_path, health_route, popen)


def adopt(
    pid: int, create_time: float, port: int, log_path: Path, health_route: str
) -> ModelProcess | None:
    """Re-attach to a process a previous emulator started, if it is the same one and alive."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > 0.01 or proc.status() == "zombie":
            return None
        if os.getpgid(pid) != pid:
            return None
    except (psutil.Error, OSError):
        return None
    return ModelProcess(pid, proc.create_time(), port, log_path, health_route)
