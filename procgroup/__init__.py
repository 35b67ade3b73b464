"""Stopping what we started: SIGTERM, a grace period, then SIGKILL.

One helper for every place that ends child processes: the load test's Locust group, the
emulator's model servers and pipeline-job runners, and the tasks of a cancelled job. A leaf
package (imports nothing of ours) so that components/ and emulator/ can both use it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable

import psutil

__all__ = ["stop_group", "stop_processes"]


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _running(leader: subprocess.Popen | psutil.Process) -> bool:
    if isinstance(leader, subprocess.Popen):
        return leader.poll() is None
    try:  # is_running() also checks the start time, so a reused pid is not ours
        return leader.is_running() and leader.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop_group(leader: subprocess.Popen | psutil.Process, grace_s: float) -> None:
    """End the process group that `leader` leads (started with `start_new_session=True`).

    SIGTERM the group, wait up to `grace_s` for the leader to exit, then SIGKILL the group:
    members that outlive their leader (Locust's workers, a model server's children) go too.
    A leader that has exited already still has its group SIGKILLed. Our own child is reaped.
    """
    if _running(leader):
        _signal_group(leader.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _running(leader) and time.monotonic() < deadline:
            time.sleep(0.05)
    _signal_group(leader.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired, psutil.Error):
        leader.wait(timeout=10)


def stop_processes(procs: Iterable[psutil.Process], grace_s: float) -> None:
    """SIGTERM each process, wait up to `grace_s` for them all, SIGKILL the ones left.
    For processes that share a group with others that must live on. Processes that are
    gone already are skipped."""
    procs = list(procs)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
