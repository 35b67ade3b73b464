"""Start an emulator as a subprocess and stop it again, leaving nothing behind.

    with EmulatorProcess(tmp_path / "emu", faults={"deploy": "hang"}) as emu:
        init_sdk(emu.url)
        ...
        emu.set_faults({"deploy": None})
        assert emu.processes() == []

`stop()` sends SIGTERM (the emulator stops its model servers), kills after a grace
period, and raises `LeftoverProcessError` if any process it had started is still alive
(after killing it).

The emulator is tied to the process that starts it (`tie_to_owner`, on by default): it
gets the read end of a pipe whose write end only this process holds, so if this process
dies, even by SIGKILL, the emulator undeploys everything and exits by itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from emulator.client import EmulatorAdmin

_FAULT_FLAGS = {
    "deploy": "--fault-deploy",
    "predict_error_rate": "--fault-predict-error-rate",
    "predict_error_code": "--fault-predict-error-code",
    "predict_latency_ms": "--fault-predict-latency-ms",
}


class LeftoverProcessError(AssertionError):
    """Processes of the emulator outlived its stop (they have been killed)."""


class EmulatorProcess:
    """`python -m emulator` as a managed subprocess (a context manager)."""

    def __init__(
        self,
        state_dir: str | os.PathLike,
        port: int = 0,
        faults: dict | None = None,
        extra_args: tuple[str, ...] | list[str] = (),
        start_timeout_s: float = 60.0,
        wait_recovery: bool = True,
        python: str = sys.executable,
        tie_to_owner: bool = True,
    ):
        self.state_dir = Path(state_dir)
        self.port = port
        self.faults = dict(faults or {})
        self.extra_args = list(extra_args)
        self.start_timeout_s = start_timeout_s
        self.wait_recovery = wait_recovery
        self.python = python
        self.tie_to_owner = tie_to_owner
        self._owner_fd: int | None = None  # our end of the owner pipe
        self.url: str | None = None
        self.popen: subprocess.Popen | None = None
        self.output: list[str] = []
        self._known: dict[int, float] = {}  # pid -> create_time of processes seen under it

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> EmulatorProcess:
        """Start and wait (bounded) until it listens and has recovered deployed models."""
        args = [self.python, "-m", "emulator", "--state-dir", str(self.state_dir)]
        args += ["--port", str(self.port)]
        for key, value in self.faults.items():
            if value is not None:
                args += [_FAULT_FLAGS[key], str(value)]
        args += self.extra_args
        pass_fds: tuple[int, ...] = ()
        if self.tie_to_owner:
            # Only this process holds the write end (os.pipe fds are not inherited).
            read_fd, self._owner_fd = os.pipe()
            args += ["--exit-with-fd", str(read_fd)]
            pass_fds = (read_fd,)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        root = Path(__file__).resolve().parent.parent
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
        self.popen = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # its own session: a Ctrl-C meant for `deploytest run` must not stop the emulator
            # before the run has cleaned up through it
            start_new_session=True,
            text=True,
            env=env,
            pass_fds=pass_fds,
        )
        for fd in pass_fds:
            os.close(fd)
        ready = threading.Event()
        threading.Thread(target=self._read_output, args=(ready,), daemon=True).start()
        if not ready.wait(self.start_timeout_s) or self.url is None:
            self.stop(check=False)
            raise RuntimeError(f"emulator did not start:\n{self.log_text()}")
        if self.wait_recovery:
            self.wait_recovered(self.start_timeout_s)
        return self

    def _read_output(self, ready: threading.Event) -> None:
        assert self.popen is not None and self.popen.stdout is not None
        for line in self.popen.stdout:
            self.output.append(line)
            if self.url is None and line.startswith("emulator listening on "):
                self.url = line.split("emulator listening on ", 1)[1].strip()
                ready.set()
        ready.set()

    def log_text(self) -> str:
        """Everything the emulator printed so far."""
        return "".join(self.output)

    def wait_recovered(self, timeout_s: float = 60.0) -> None:
        """Wait until the emulator has adopted/restarted the deployed models it found."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.admin.health().get("recovering", 0) == 0:
                return
            time.sleep(0.1)
        raise TimeoutError("emulator still recovering deployed models")

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(check=exc[0] is None)

    @property
    def pid(self) -> int | None:
        """The emulator's pid."""
        return self.popen.pid if self.popen else None

    def _remember_children(self) -> None:
        if self.popen is None:
            return
        try:
            for child in psutil.Process(self.popen.pid).children(recursive=True):
                self._known[child.pid] = child.create_time()
        except psutil.Error:
            pass

    def _leftovers(self) -> list[psutil.Process]:
        alive = []
        for pid, ctime in self._known.items():
            try:
                proc = psutil.Process(pid)
                if proc.create_time() == ctime and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.Error:
                pass
        return alive

    def stop(self, timeout_s: float = 30.0, check: bool = True) -> None:
        """SIGTERM, wait, SIGKILL; then make sure no process it started is left. Idempotent."""
        if self.popen is None:
            return
        from procgroup import stop_group

        self._remember_children()
        stop_group(self.popen, timeout_s)  # its own session: the group is the emulator
        self.popen = None
        self._close_owner_fd()
        leftovers = self._leftovers()
        for proc in leftovers:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                proc.kill()
            except psutil.Error:
                pass
        self._known.clear()
        if leftovers and check:
            raise LeftoverProcessError(f"processes left after emulator stop: {leftovers}")

    def _close_owner_fd(self) -> None:
        if self._owner_fd is not None:
            os.close(self._owner_fd)
            self._owner_fd = None

    def crash(self) -> None:
        """SIGKILL the emulator only (its model servers live on), to test adoption."""
        if self.popen is not None:
            self._remember_children()
            self.popen.kill()
            self.popen.wait(10)
            self.popen = None
            self._close_owner_fd()

    def client_env(self) -> dict[str, str]:
        """The environment that points Google's clients at this emulator by default hosts
        (what `--env-file` writes; see emulator/envfile.py). Apply it to a subprocess."""
        import json

        return json.loads((self.state_dir / "client-env.json").read_text())

    # -- admin API ------------------------------------------------------------------------
    @property
    def admin(self) -> EmulatorAdmin:
        """The admin API of this emulator (faults, processes, health)."""
        assert self.url is not None, "the emulator is not started"
        return EmulatorAdmin(self.url)

    def set_faults(self, faults: dict) -> dict:
        """Change faults at runtime (partial update); returns the active faults."""
        return self.admin.set_faults(faults)

    def get_faults(self) -> dict:
        """The active faults."""
        return self.admin.get_faults()

    def clear_faults(self) -> dict:
        """Turn every fault off; returns the active faults."""
        return self.admin.clear_faults()

    def processes(self) -> list[dict]:
        """Model-server processes the emulator runs now (pid, port, endpoint, deployedModelId)."""
        self._remember_children()
        return self.admin.processes()
