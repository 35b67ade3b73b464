"""Fixtures for the component tests: a stand-in model server, an emulator per module (the
clean-up and janitor tests), and a no-leftover-process check."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from emulator.launcher import EmulatorProcess
from tests.components.predict_server import PredictServer
from tests.processes import gone, processes_mentioning

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO / "loadtests" / "locustfile.py"
PREDICT_PATH = "/v1/projects/p/locations/l/endpoints/1:predict"


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory) -> Path:
    """The tiny demo model (its tokenizer.json counts tokens), built once per session."""
    from serving.demo_model import build_demo_model

    return build_demo_model(tmp_path_factory.mktemp("components") / "tiny", size="tiny")


@pytest.fixture
def no_process_left_behind(tmp_path_factory):
    """Fails a test that leaves a child process, or a process mentioning this session's temp
    folder (an orphaned Locust worker), behind. Modules opt in with `pytestmark`. Children that
    were running before the test (CDKTF's jsii node runtime, which lives as long as the pytest
    process once any test has imported cdktf) are not the test's."""
    me = psutil.Process()
    ours = str(tmp_path_factory.getbasetemp())
    # ... nor are the session's shared servers started before it (tests/emulator's
    # shared emulator lives until the session ends, under this temp folder).
    before = {p.pid for p in me.children(recursive=True)}
    before |= {p.pid for p in processes_mentioning(ours)}
    yield
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [p for p in me.children(recursive=True) if p.pid not in before and not gone(p.pid)]
        left += [p for p in processes_mentioning(ours) if p.pid not in before]
        if not left:
            return
        time.sleep(0.2)
    pytest.fail(f"processes left behind: {[(p.pid, p.cmdline()) for p in left]}")


@pytest.fixture
def model_server():
    with PredictServer("ok") as server:
        yield server


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """The embedded Vertex AI, one per test module, stopped (with its model servers) after."""
    with EmulatorProcess(tmp_path_factory.mktemp("emulator")) as emu:
        yield emu
