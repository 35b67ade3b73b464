"""The janitor against the emulator: `deploytest cleanup --expired` removes exactly the
managed endpoints past their expiry (a deploy in flight included), logs each as a leak,
and never touches an endpoint without `deploytest-managed=true`."""

import json
import subprocess
import sys
import time

import pytest
from google.api_core import exceptions as gexc
from google.cloud import aiplatform_v1

from components.janitor import LEAK_EVENT, clean_expired
from components.runtime.make_labels import resource_labels
from components.vertex_clients import endpoint_client, location_path, model_client
from tests.components.test_cleanup import deploy, upload

PROJECT, LOCATION = "deploytest-local", "us-central1"


@pytest.fixture
def endpoints(emulator):
    emulator.clear_faults()
    client = endpoint_client(LOCATION, emulator.url)
    yield client
    emulator.clear_faults()
    parent = location_path(PROJECT, LOCATION)
    for endpoint in client.list_endpoints(parent=parent):
        for dm in endpoint.deployed_models:
            client.undeploy_model(endpoint=endpoint.name, deployed_model_id=dm.id).result()
        client.delete_endpoint(name=endpoint.name).result()
    assert list(client.list_endpoints(parent=parent)) == []
    assert emulator.processes() == []


def create(client, run, labels):
    endpoint = aiplatform_v1.Endpoint(display_name=run, labels=labels)
    parent = location_path(PROJECT, LOCATION)
    return client.create_endpoint(parent=parent, endpoint=endpoint).result().name


def exists(client, name):
    try:
        client.get_endpoint(name=name)
        return True
    except gexc.NotFound:
        return False


def janitor(emulator, *args):
    cmd = [sys.executable, "-m", "deploytest", "cleanup", "--project", PROJECT]
    cmd += ["--api-endpoint", emulator.url, "--expired", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_expired_removes_exactly_the_expired_managed_endpoints(endpoints, emulator):
    now = int(time.time())
    expired = create(endpoints, "old", resource_labels("old", "", expires=now - 60))
    future = create(endpoints, "new", resource_labels("new", "", expires=now + 3600))
    no_label = create(endpoints, "bare", resource_labels("bare", ""))
    # someone else's endpoint, expired by our label's reckoning but not ours to touch
    foreign = create(
        endpoints, "foreign", {"deploytest-expires-at": str(now - 60), "deploytest-run": "x"}
    )
    # an expired endpoint whose deploy is still in flight: cancelled, then cleaned
    hung = create(endpoints, "hung", resource_labels("hung", "", expires=now - 1))
    emulator.set_faults({"deploy": "hang"})
    operation = deploy(endpoints, hung, upload(model_client(LOCATION, emulator.url)))

    dry = janitor(emulator, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "2 expired managed endpoint(s)" in dry.stdout
    assert expired in dry.stdout and hung in dry.stdout
    assert all(exists(endpoints, n) for n in (expired, future, no_label, foreign, hung))
    assert not operation.done()  # a dry run changes nothing

    run = janitor(emulator)
    assert run.returncode == 0, run.stderr
    leaks = [json.loads(line) for line in run.stdout.splitlines() if LEAK_EVENT in line]
    assert sorted(leak["name"] for leak in leaks) == sorted([expired, hung])
    assert all(leak["severity"] == "ERROR" for leak in leaks)
    assert "2 endpoint(s) deleted, 0 left" in run.stdout
    assert not exists(endpoints, expired) and not exists(endpoints, hung)
    assert exists(endpoints, future) and exists(endpoints, no_label) and exists(endpoints, foreign)
    with pytest.raises(gexc.Cancelled):
        operation.result(timeout=10)
    assert emulator.processes() == []


def test_managed_endpoints_without_an_expiry_go_after_max_age(endpoints, emulator):
    now = time.time()
    no_label = create(endpoints, "bare", resource_labels("bare", ""))
    future = create(endpoints, "new", resource_labels("new", "", expires=int(now) + 86400))
    foreign = create(endpoints, "foreign", {"deploytest-run": "x"})

    # an hour later, with a maximum age of ten minutes
    found, record = clean_expired(
        PROJECT, LOCATION, emulator.url, max_age_s=600, now=now + 3600, log=lambda _: 0
    )
    assert [e.name for e in found] == [no_label] and "no deploytest-expires-at" in found[0].reason
    assert record.ok and not exists(endpoints, no_label)
    assert exists(endpoints, future) and exists(endpoints, foreign)


def test_bad_input_is_refused_before_anything_is_touched(emulator):
    bad = janitor(emulator, "--max-age", "soon")
    assert bad.returncode == 2 and "invalid --max-age" in bad.stderr
