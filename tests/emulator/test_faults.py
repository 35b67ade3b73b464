"""Fault injection through the admin API, observed through the official SDK."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from google.api_core import exceptions as gexc

from tests.emulator.conftest import upload_fake


def _wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_deploy_fail_fault_raises_and_leaves_nothing(aiplatform, emulator):
    model = upload_fake(aiplatform)
    endpoint = aiplatform.Endpoint.create(display_name="ep-fail")
    emulator.set_faults({"deploy": "fail"})
    with pytest.raises(gexc.InternalServerError, match="fault injected: deploy=fail"):
        model.deploy(endpoint=endpoint, machine_type="n1-standard-2")
    # As on Vertex AI, a failed deploy leaves no DeployedModel: clean-up has nothing to undeploy.
    endpoint._sync_gca_resource()
    assert list(endpoint.gca_resource.deployed_models) == []
    assert emulator.processes() == []
    endpoint.undeploy_all()
    endpoint.delete()


def test_a_deploy_fault_can_hit_one_machine_type_only(aiplatform, emulator):
    model = upload_fake(aiplatform)
    endpoint = aiplatform.Endpoint.create(display_name="ep-one-type")
    emulator.set_faults({"deploy": "fail", "deploy_machine_type": "e2-standard-4"})
    try:
        with pytest.raises(gexc.InternalServerError, match="fault injected: deploy=fail"):
            model.deploy(endpoint=endpoint, machine_type="e2-standard-4")
        model.deploy(endpoint=endpoint, machine_type="n1-standard-2")  # another type deploys
        assert len(endpoint.list_models()) == 1 and len(emulator.processes()) == 1
    finally:
        emulator.set_faults({"deploy": None, "deploy_machine_type": ""})
        endpoint.undeploy_all()
        endpoint.delete()
    assert emulator.processes() == []


def test_crashing_container_fails_deploy_with_log_tail(aiplatform, emulator):
    model = upload_fake(aiplatform, env={"FAKE_EXIT_CODE": "7"})
    endpoint = aiplatform.Endpoint.create(display_name="ep-crash")
    with pytest.raises(gexc.InternalServerError) as err:
        model.deploy(endpoint=endpoint, machine_type="n1-standard-2")
    assert "exit code 7" in str(err.value) and "crashing on purpose" in str(err.value)
    assert endpoint.list_models() == [] and emulator.processes() == []


def test_deploy_hang_then_undeploy_aborts_it(aiplatform, emulator):
    model = upload_fake(aiplatform)
    endpoint = aiplatform.Endpoint.create(display_name="ep-hang")
    emulator.set_faults({"deploy": "hang"})
    outcome: dict = {}

    def deploy():
        try:
            model.deploy(endpoint=endpoint, machine_type="n1-standard-2")
        except Exception as exc:  # noqa: BLE001 - we assert on it below
            outcome["error"] = exc

    thread = threading.Thread(target=deploy)
    thread.start()
    watcher = aiplatform.Endpoint(endpoint.resource_name)

    def visible():
        watcher._sync_gca_resource()
        return len(watcher.gca_resource.deployed_models) == 1

    _wait_for(visible)  # visible while the deploy is in flight, so clean-up can find it
    _wait_for(lambda: len(emulator.processes()) == 1)
    watcher.undeploy_all()
    thread.join(30)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), gexc.Aborted)
    assert emulator.processes() == []
    watcher.delete()


def test_cancel_of_a_pending_deploy(aiplatform, emulator):
    model = upload_fake(aiplatform)
    endpoint = aiplatform.Endpoint.create(display_name="ep-cancel")
    emulator.set_faults({"deploy": "hang"})
    lro = endpoint.api_client.deploy_model(
        endpoint=endpoint.resource_name,
        deployed_model={
            "model": model.resource_name,
            "dedicated_resources": {"machine_spec": {"machine_type": "n1-standard-2"}},
        },
        traffic_split={"0": 100},
    )
    assert not lro.done()
    # `lro.cancel()` itself fails inside api_core's REST operations transport (KeyError 'body':
    # its cancel rules carry no body), so cancel the way a REST caller does.
    resp = httpx.post(f"{emulator.url}/v1/{lro.operation.name}:cancel")
    assert resp.status_code == 200 and resp.json() == {}
    with pytest.raises(gexc.Cancelled):
        lro.result(timeout=10)
    assert endpoint.list_models() == [] and emulator.processes() == []


def test_predict_error_rate_and_latency(aiplatform, emulator):
    model = upload_fake(aiplatform)
    endpoint = aiplatform.Endpoint.create(display_name="ep-predict-faults")
    model.deploy(endpoint=endpoint, machine_type="n1-standard-2")

    emulator.set_faults({"predict_error_rate": 1.0})
    with pytest.raises(gexc.ServiceUnavailable, match="Injected predict fault"):
        endpoint.predict(instances=[{"text": "x"}])
    emulator.set_faults({"predict_error_code": 429})
    with pytest.raises(gexc.TooManyRequests):
        endpoint.predict(instances=[{"text": "x"}])

    emulator.set_faults({"predict_error_rate": 0.0, "predict_latency_ms": 400})
    start = time.monotonic()
    assert endpoint.predict(instances=[{"text": "slow"}]).predictions
    assert time.monotonic() - start >= 0.4
    assert emulator.get_faults()["predict_latency_ms"] == 400


def test_bad_faults_are_rejected(emulator, aiplatform):
    url = f"{emulator.url}/deploytest/v1/faults"
    for bad in (
        {"deploy": "explode"},
        {"predict_error_rate": 2},
        {"nope": 1},
        {"deploy_machine_type": "N1 standard"},
    ):
        resp = httpx.put(url, json=bad)
        assert resp.status_code == 400 and resp.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert httpx.get(url).json()["deploy"] is None
