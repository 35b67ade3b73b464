"""Fixtures for the load-test tests: a stand-in model server and a no-leftover-process check."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

from tests.components.predict_server import PredictServer

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO / "loadtests" / "locustfile.py"
PREDICT_PATH = "/v1/projects/p/locations/l/endpoints/1:predict"


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def processes_mentioning(text: str) -> list[psutil.Process]:
    """Live processes whose command line contains `text` (e.g. this session's temp folder),
    wherever they hang in the process tree: an orphaned Locust worker is no longer our child.
    Other sessions' Locust runs on the same machine do not match."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if text in cmdline and proc.pid != os.getpid() and not gone(proc.pid):
            found.append(proc)
    return found


@pytest.fixture
def no_process_left_behind(tmp_path_factory):
    """Fails a test that leaves a child process, or a process mentioning this session's temp
    folder (an orphaned Locust worker), behind. Modules opt in with `pytestmark`."""
    me = psutil.Process()
    ours = str(tmp_path_factory.getbasetemp())
    yield
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [p for p in me.children(recursive=True) if not gone(p.pid)]
        left += processes_mentioning(ours)
        if not left:
            return
        time.sleep(0.2)
    pytest.fail(f"processes left behind: {[(p.pid, p.cmdline()) for p in left]}")


@pytest.fixture
def model_server():
    with PredictServer("ok") as server:
        yield server
