"""Clean-up against the emulator through the real SDK clients: finds a run's endpoints by
label, undeploys and deletes them, spares other runs, copes with a deploy in flight, and
fails loudly when something is left."""

import sys
import time

import pytest
from google.api_core import exceptions as gexc
from google.cloud import aiplatform_v1

import components.runtime.cleanup as cleanup
from components.runtime.make_labels import resource_labels
from components.vertex_clients import endpoint_client, location_path, model_client
from tests.emulator.conftest import FAKE_SERVER

PROJECT, LOCATION = "deploytest-local", "us-central1"


@pytest.fixture
def clients(emulator):
    emulator.clear_faults()
    yield endpoint_client(LOCATION, emulator.url), model_client(LOCATION, emulator.url)
    emulator.clear_faults()
    for label in ("run-a", "run-b", "run-hang", "run-slow", "run-denied"):
        cleanup.cleanup_run(PROJECT, LOCATION, label, emulator.url, timeout_s=30, log=lambda _: 0)
    assert emulator.processes() == []


def upload(models, load_s="0.2"):
    model = aiplatform_v1.Model(
        display_name="fake",
        container_spec=aiplatform_v1.ModelContainerSpec(
            image_uri="local",
            command=[sys.executable, FAKE_SERVER],
            env=[aiplatform_v1.EnvVar(name="FAKE_LOAD_S", value=load_s)],
        ),
    )
    return models.upload_model(parent=location_path(PROJECT, LOCATION), model=model).result().model


def create(endpoints, run):
    endpoint = aiplatform_v1.Endpoint(display_name=run, labels=resource_labels(run, ""))
    return endpoints.create_endpoint(parent=location_path(PROJECT, LOCATION), endpoint=endpoint)


def deploy(endpoints, endpoint, model):
    deployed = aiplatform_v1.DeployedModel(
        model=model,
        dedicated_resources=aiplatform_v1.DedicatedResources(
            machine_spec=aiplatform_v1.MachineSpec(machine_type="n1-standard-4"),
            min_replica_count=1,
        ),
    )
    return endpoints.deploy_model(
        endpoint=endpoint, deployed_model=deployed, traffic_split={"0": 100}
    )


def test_cleans_every_endpoint_of_the_run_and_spares_other_runs(clients, emulator):
    endpoints, models = clients
    model = upload(models)
    a1 = create(endpoints, "run-a").result().name
    a2 = create(endpoints, "run-a").result().name  # e.g. a create whose task died half-way
    b = create(endpoints, "run-b").result().name
    deploy(endpoints, a1, model).result(timeout=60)
    deploy(endpoints, b, model).result(timeout=60)
    # Vertex refuses to delete an endpoint that still has a model; clean-up knows the answer
    with pytest.raises(gexc.BadRequest) as refused:
        endpoints.delete_endpoint(name=a1).result()
    assert cleanup.is_busy(refused.value)

    lines = []
    record = cleanup.cleanup_run(PROJECT, LOCATION, "run-a", emulator.url, log=lines.append)

    assert record.ok and record.left == []
    assert sorted(e.name for e in record.endpoints) == sorted([a1, a2])
    assert all(e.deleted for e in record.endpoints)
    assert sum(len(e.undeployed_models) for e in record.endpoints) == 1
    for name in (a1, a2):
        with pytest.raises(gexc.NotFound):
            endpoints.get_endpoint(name=name)
    # the other run's endpoint and model server are untouched
    assert len(endpoints.get_endpoint(name=b).deployed_models) == 1
    assert [p["endpoint"] for p in emulator.processes()] == [b]
    assert any("undeploying" in line for line in lines)
    data = record.to_json()
    assert '"ok": true' in data and '"schema_version": 1' in data


def test_cancels_a_deploy_that_outlasts_the_bound_and_deletes_the_endpoint(clients, emulator):
    endpoints, models = clients
    model = upload(models)
    endpoint = create(endpoints, "run-hang").result().name
    emulator.set_faults({"deploy": "hang"})
    operation = deploy(endpoints, endpoint, model)  # never completes by itself
    time.sleep(0.5)
    assert not operation.done()

    # A bound far shorter than the deploy (which never ends): clean-up must not wait it out.
    started = time.monotonic()
    record = cleanup.cleanup_run(PROJECT, LOCATION, "run-hang", emulator.url, timeout_s=20)

    assert time.monotonic() - started < 20
    assert record.ok and record.endpoints[0].deleted
    assert record.endpoints[0].cancelled_operations == [operation.operation.name]
    assert record.endpoints[0].deployed == []  # never deployed: nothing billed
    with pytest.raises(gexc.Cancelled):
        operation.result(timeout=10)
    with pytest.raises(gexc.NotFound):
        endpoints.get_endpoint(name=endpoint)
    assert emulator.processes() == []


def test_cancels_a_deploy_that_vertex_does_not_list_yet(clients, emulator, monkeypatch):
    """On Vertex a deploy in flight holds the endpoint before its DeployedModel is listed;
    the emulator lists it at once. A client that hides models still deploying gives
    clean-up Vertex's view: the cancel alone frees the endpoint, nothing is waited out."""
    endpoints, models = clients
    model = upload(models)
    endpoint = create(endpoints, "run-hang").result().name
    emulator.set_faults({"deploy": "hang"})
    operation = deploy(endpoints, endpoint, model)

    class VertexView:
        def __init__(self, real):
            self.real = real

        def __getattr__(self, attr):
            return getattr(self.real, attr)

        def get_endpoint(self, **kwargs):
            seen = self.real.get_endpoint(**kwargs)
            ready = [dm for dm in seen.deployed_models if dm.status.available_replica_count]
            del seen.deployed_models[:]
            seen.deployed_models.extend(ready)
            return seen

    monkeypatch.setattr(cleanup, "endpoint_client", lambda *a: VertexView(endpoints))
    record = cleanup.cleanup_run(PROJECT, LOCATION, "run-hang", emulator.url, timeout_s=20)

    assert record.ok and record.endpoints[0].deleted
    assert record.endpoints[0].cancelled_operations == [operation.operation.name]
    assert record.endpoints[0].undeployed_models == []  # nothing was deployed to undeploy
    with pytest.raises(gexc.Cancelled):
        operation.result(timeout=10)
    assert emulator.processes() == []


def test_records_the_operations_timestamps_the_cost_is_made_of(clients, emulator):
    endpoints, models = clients
    model = upload(models)
    before = time.time()
    labels = {**resource_labels("run-a", ""), "vertex-ai-pipelines-run-billing-id": "4242"}
    endpoint = (
        endpoints.create_endpoint(
            parent=location_path(PROJECT, LOCATION),
            endpoint=aiplatform_v1.Endpoint(display_name="run-a", labels=labels),
        )
        .result()
        .name
    )
    deploy(endpoints, endpoint, model).result(timeout=60)

    record = cleanup.cleanup_run(PROJECT, LOCATION, "run-a", emulator.url, log=lambda _: 0)

    ep = record.endpoints[0]
    assert before - 1 <= ep.created_at <= ep.deleted_at <= time.time() + 1
    [billed] = ep.deployed
    assert billed["machine_type"] == "n1-standard-4" and billed["min_replicas"] == 1
    assert ep.created_at <= billed["deploy_started_at"] <= ep.deleted_at
    assert billed["id"] == ep.undeployed_models[0]
    assert ep.billing_id == "4242"  # Vertex AI Pipelines' label, propagated to the endpoint


def test_follows_next_page_token_when_listing_operations():
    from google.longrunning import operations_pb2

    class Paged:
        def __init__(self):
            self.requests = []

        def list_operations(self, request):
            self.requests.append(request)
            token = request.get("page_token", "")
            page = {"": ("op-1", "p2"), "p2": ("op-2", "p3"), "p3": ("op-3", "")}[token]
            return operations_pb2.ListOperationsResponse(
                operations=[operations_pb2.Operation(name=page[0])], next_page_token=page[1]
            )

    client = Paged()
    assert cleanup.pending_operations(client, "e") == ["op-1", "op-2", "op-3"]
    assert [r.get("page_token") for r in client.requests] == [None, "p2", "p3"]


def test_waits_bounded_for_operations_in_flight(clients, emulator):
    endpoints, models = clients
    slow = upload(models, load_s="3")
    endpoint = create(endpoints, "run-slow").result().name
    operation = deploy(endpoints, endpoint, slow)
    started = time.monotonic()
    assert cleanup.pending_operations(endpoints, endpoint) == [operation.operation.name]
    assert cleanup.wait_for_operations(endpoints, endpoint, started + 60, print, poll_s=0.5)
    assert time.monotonic() - started >= 2
    assert operation.done() and operation.result().deployed_model.id

    emulator.set_faults({"deploy": "hang"})
    hung = deploy(endpoints, endpoint, slow)
    started = time.monotonic()
    # the bound holds: a deploy that never ends is waited for until the deadline only
    assert not cleanup.wait_for_operations(endpoints, endpoint, started + 2, print, poll_s=0.5)
    assert time.monotonic() - started < 5
    assert not hung.done()


def test_fails_loudly_when_an_endpoint_cannot_be_deleted(clients, emulator, monkeypatch):
    endpoints, _ = clients
    name = create(endpoints, "run-denied").result().name

    class Denied:
        """The real client, with delete refused as IAM would (Google's side can't run here)."""

        def __init__(self, real):
            self.real = real

        def __getattr__(self, attr):
            return getattr(self.real, attr)

        def delete_endpoint(self, **kwargs):
            raise gexc.PermissionDenied("aiplatform.endpoints.delete denied")

    monkeypatch.setattr(cleanup, "endpoint_client", lambda *a: Denied(endpoints))
    record = cleanup.cleanup_run(PROJECT, LOCATION, "run-denied", emulator.url, timeout_s=10)
    assert not record.ok and record.left == [name]
    assert "PermissionDenied" in record.endpoints[0].error
    with pytest.raises(cleanup.CleanupIncomplete, match=name):
        cleanup.cleanup_or_raise(
            project=PROJECT, location=LOCATION, run_label="run-denied",
            api_endpoint=emulator.url, timeout_s=10,
        )  # fmt: skip


def test_retries_transient_errors_with_backoff_and_not_others(monkeypatch):
    calls, slept = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise gexc.ServiceUnavailable("try again")
        return "done"

    monkeypatch.setattr(cleanup.time, "sleep", slept.append)
    assert cleanup.with_retries(flaky, "x", time.monotonic() + 60, lambda _: 0) == "done"
    assert slept == [0.5, 1.0]
    with pytest.raises(gexc.PermissionDenied):
        cleanup.with_retries(
            lambda: (_ for _ in ()).throw(gexc.PermissionDenied("no")),
            "x", time.monotonic() + 60, lambda _: 0,
        )  # fmt: skip
    # past the deadline the transient error is raised, not retried forever
    calls.clear()
    with pytest.raises(gexc.ServiceUnavailable):
        cleanup.with_retries(flaky, "x", time.monotonic() + 0.1, lambda _: 0)


def test_janitor_command_cleans_one_run_then_every_managed_endpoint(clients, emulator):
    import subprocess

    endpoints, models = clients
    model = upload(models)
    a = create(endpoints, "run-a").result().name
    b = create(endpoints, "run-b").result().name
    deploy(endpoints, b, model).result(timeout=60)

    def janitor(*args):
        cmd = [sys.executable, "-m", "deploytest", "cleanup", "--project", PROJECT]
        cmd += ["--api-endpoint", emulator.url, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    dry = janitor("--run", "run-a", "--dry-run")
    assert dry.returncode == 0 and a in dry.stdout and b not in dry.stdout
    endpoints.get_endpoint(name=a)  # a dry run changes nothing

    one = janitor("--run", "run-a")
    assert one.returncode == 0, one.stderr
    with pytest.raises(gexc.NotFound):
        endpoints.get_endpoint(name=a)
    assert len(endpoints.get_endpoint(name=b).deployed_models) == 1

    every = janitor("--all-managed")
    assert every.returncode == 0, every.stderr
    assert "1 endpoint(s) deleted, 1 model(s) undeployed, 0 left" in every.stdout
    with pytest.raises(gexc.NotFound):
        endpoints.get_endpoint(name=b)
    assert emulator.processes() == []

    bad = janitor("--run", "Not A Label")
    assert bad.returncode == 2 and "invalid run label" in bad.stderr
