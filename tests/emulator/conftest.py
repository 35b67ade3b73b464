"""Fixtures: an emulator subprocess driven only through the official SDK."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import psutil
import pytest

from emulator.client import init_sdk
from emulator.launcher import EmulatorProcess

FAKE_SERVER = str(Path(__file__).with_name("fake_model_server.py"))
LABELS = {"deploytest-run": "r1", "deploytest-managed": "true"}


def port_is_free(url: str) -> bool:
    """True when nothing listens on the URL's port any more."""
    host, port = url.rsplit("//", 1)[1].split(":")
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, int(port))) != 0


def assert_all_gone(emu: EmulatorProcess, pids: set[int]) -> None:
    """No model-server process the emulator ran is alive, and none are listed."""
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert alive == [], f"model servers still alive: {alive}"


def upload_fake(aiplatform, display_name: str = "fake", env: dict | None = None, **kwargs):
    """Upload a model whose container command is the fake model server."""
    return aiplatform.Model.upload(
        display_name=display_name,
        artifact_uri="gs://demo/models/fake",
        serving_container_image_uri="local",
        serving_container_command=[sys.executable, FAKE_SERVER],
        serving_container_environment_variables={"FAKE_LOAD_S": "0.3", **(env or {})},
        **kwargs,
    )


def cleanup_sdk(aiplatform) -> None:
    """Undeploy and delete every endpoint; delete every model (what a janitor does)."""
    for endpoint in aiplatform.Endpoint.list():
        endpoint.undeploy_all()
        endpoint.delete()
    for model in aiplatform.Model.list():
        model.delete()


def _emulator(tmp_path_factory):
    emu = EmulatorProcess(
        tmp_path_factory.mktemp("emulator"), extra_args=["--deploy-timeout-s", "20"]
    )
    emu.start()
    yield emu
    url = emu.url
    emu.stop()  # raises LeftoverProcessError if a model server outlived it
    assert port_is_free(url)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """One emulator per test module; stopped (and checked for leftovers) at the end."""
    yield from _emulator(tmp_path_factory)


@pytest.fixture(scope="package")
def shared_emulator(tmp_path_factory):
    """One emulator for the modules whose tests each leave it empty (the API contract
    tests: test_strict_bodies, test_list_filters, test_conformance), so they start one;
    stopped when tests/emulator ends, not kept running under later folders' tests."""
    yield from _emulator(tmp_path_factory)


@pytest.fixture
def aiplatform(emulator):
    """The SDK initialised for the module's emulator; every test leaves it empty and idle."""
    from google.cloud import aiplatform as sdk

    emulator.clear_faults()
    init_sdk(emulator.url, project="p", location="us-central1")
    seen: set[int] = set()
    yield sdk
    seen |= {p["pid"] for p in emulator.processes()}
    emulator.clear_faults()
    cleanup_sdk(sdk)
    assert emulator.processes() == []
    assert_all_gone(emulator, seen)
