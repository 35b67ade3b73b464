"""Fixtures for the load-test tests: a stand-in model server and a no-leftover-process check."""

from __future__ import annotations

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


def locust_processes() -> list[psutil.Process]:
    """Every process on the machine that runs our locustfile (ours or a leftover)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "locust" in cmdline and str(LOCUSTFILE) in cmdline and not gone(proc.pid):
            found.append(proc)
    return found


@pytest.fixture(autouse=True)
def no_process_left_behind():
    me = psutil.Process()
    yield
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [p for p in me.children(recursive=True) if not gone(p.pid)] + locust_processes()
        if not left:
            return
        time.sleep(0.2)
    pytest.fail(f"processes left behind: {[(p.pid, p.cmdline()) for p in left]}")


@pytest.fixture
def model_server():
    with PredictServer("ok") as server:
        yield server
