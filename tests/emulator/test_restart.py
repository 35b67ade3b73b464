"""State survives an emulator restart; deployed models are restarted, adopted, or marked failed."""

from __future__ import annotations

import psutil
import pytest
from google.api_core import exceptions as gexc

from emulator.client import init_sdk
from emulator.launcher import EmulatorProcess
from tests.emulator.conftest import LABELS, cleanup_sdk, port_is_free, upload_fake


@pytest.fixture
def sdk():
    from google.cloud import aiplatform

    return aiplatform


def _deploy(sdk, emu, env=None):
    init_sdk(emu.url, project="p", location="us-central1")
    model = upload_fake(sdk, env=env)
    endpoint = sdk.Endpoint.create(display_name="ep-restart", labels=LABELS)
    model.deploy(endpoint=endpoint, machine_type="n1-standard-2")
    (proc,) = emu.processes()
    return endpoint, proc["pid"]


def _status_message(sdk, endpoint) -> str:
    (dm,) = sdk.Endpoint(endpoint.resource_name).gca_resource.deployed_models
    return dm.status.message


def test_graceful_restart_restarts_deployed_model(sdk, tmp_path):
    with EmulatorProcess(tmp_path / "emu") as emu:
        endpoint, pid = _deploy(sdk, emu)
        first_url = emu.url
    assert not psutil.pid_exists(pid)  # stop stops the model servers...
    assert port_is_free(first_url)
    with EmulatorProcess(tmp_path / "emu") as emu:  # ...and the next start restarts them
        init_sdk(emu.url, project="p", location="us-central1")
        (again,) = sdk.Endpoint.list(filter='labels.deploytest-run="r1"')
        assert again.resource_name == endpoint.resource_name
        assert "restarted" in _status_message(sdk, again)
        prediction = again.predict(instances=[{"text": "after restart"}])
        assert prediction.predictions[0]["generated_text"] == "echo: after restart"
        (proc,) = emu.processes()
        assert proc["pid"] != pid
        cleanup_sdk(sdk)
        assert emu.processes() == []


def test_crashed_emulator_adopts_running_model_server(sdk, tmp_path):
    emu = EmulatorProcess(tmp_path / "emu").start()
    try:
        endpoint, pid = _deploy(sdk, emu)
        emu.crash()  # SIGKILL: no chance to stop its children
        assert psutil.pid_exists(pid)
    finally:
        emu.stop(check=False)
    with EmulatorProcess(tmp_path / "emu") as emu:
        init_sdk(emu.url, project="p", location="us-central1")
        assert [p["pid"] for p in emu.processes()] == [pid]  # adopted, not restarted
        assert "adopted" in _status_message(sdk, endpoint)
        assert sdk.Endpoint(endpoint.resource_name).predict(instances=[{"text": "a"}]).predictions
    assert not psutil.pid_exists(pid)


def test_failed_restart_is_recorded_and_still_cleanable(sdk, tmp_path):
    flag = tmp_path / "crash-now"
    with EmulatorProcess(tmp_path / "emu") as emu:
        endpoint, _ = _deploy(sdk, emu, env={"FAKE_CRASH_IF_EXISTS": str(flag)})
    flag.write_text("x")
    with EmulatorProcess(tmp_path / "emu") as emu:
        init_sdk(emu.url, project="p", location="us-central1")
        message = _status_message(sdk, endpoint)
        assert "Restart after an emulator restart failed" in message and "exit code 3" in message
        assert emu.processes() == []
        with pytest.raises(gexc.ServiceUnavailable):
            sdk.Endpoint(endpoint.resource_name).predict(instances=[{"text": "x"}])
        log = (tmp_path / "emu" / "logs" / "emulator.log").read_text()
        assert "Restart after an emulator restart failed" in log
        cleanup_sdk(sdk)  # never silently lost: it is still there to undeploy


def test_deploy_timeout(sdk, tmp_path):
    with EmulatorProcess(tmp_path / "emu", extra_args=["--deploy-timeout-s", "1.5"]) as emu:
        init_sdk(emu.url, project="p", location="us-central1")
        model = upload_fake(sdk, env={"FAKE_NEVER_HEALTHY": "1"})
        endpoint = sdk.Endpoint.create(display_name="ep-timeout")
        with pytest.raises(gexc.DeadlineExceeded, match="never became ready"):
            model.deploy(endpoint=endpoint, machine_type="n1-standard-2")
        assert emu.processes() == []
        cleanup_sdk(sdk)


def test_emulator_json_and_cli_flags(tmp_path):
    import json

    faults = {"deploy": "hang", "predict_latency_ms": 5}
    with EmulatorProcess(tmp_path / "emu", faults=faults) as emu:
        info = json.loads((tmp_path / "emu" / "emulator.json").read_text())
        assert info == {
            "url": emu.url,
            "pid": emu.pid,
            "state_dir": str((tmp_path / "emu").resolve()),
        }
        assert emu.get_faults()["deploy"] == "hang"
        assert emu.get_faults()["predict_latency_ms"] == 5
    assert not (tmp_path / "emu" / "emulator.json").exists()
    emu.stop()  # idempotent
