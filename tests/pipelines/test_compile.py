"""The compiled graph: the exit handler wraps exactly the five guarded steps, clean-up
always runs, GCPC creates and deploys, and every image is one a build pushes."""

import pytest
import yaml

from pipelines.compile import compile_pipeline
from pipelines.pipeline import DEFAULTS, DEPLOY_TASK, EXIT_HANDLER_NAME

GUARDED = {
    "endpoint-create", "reference-answers", DEPLOY_TASK, "locust-load-test", "record-run",
    "slo-gate",
}  # fmt: skip
# the job's resource name, whose last segment is unique (components/runtime/make_labels.py)
JOB_PLACEHOLDER = "{{$.pipeline_job_resource_name}}"


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled") / "pipeline.yaml"
    return yaml.safe_load(compile_pipeline(out).read_text())


def _exit_handler(spec):
    root_tasks = spec["root"]["dag"]["tasks"]
    handlers = [t for t in root_tasks.values() if t["taskInfo"]["name"] == EXIT_HANDLER_NAME]
    assert len(handlers) == 1, f"one exit handler named {EXIT_HANDLER_NAME!r}"
    handler = handlers[0]
    return handler, spec["components"][handler["componentRef"]["name"]]["dag"]["tasks"]


def test_the_exit_handler_wraps_exactly_create_reference_deploy_test_record_gate(spec):
    _, inner = _exit_handler(spec)
    assert set(inner) == GUARDED
    # GCPC's own launchers create and deploy
    for task in ("endpoint-create", DEPLOY_TASK):
        executor = spec["deploymentSpec"]["executors"][f"exec-{task}"]
        assert "google-cloud-pipeline-components" in executor["container"]["image"]
        assert "google_cloud_pipeline_components.container" in " ".join(
            executor["container"]["args"] + executor["container"].get("command", [])
        )


def test_cleanup_is_the_exit_task_and_always_runs(spec):
    root_tasks = spec["root"]["dag"]["tasks"]
    cleanup = root_tasks["cleanup-endpoints"]
    assert cleanup["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    handler_key = next(
        k for k, t in root_tasks.items() if t["taskInfo"]["name"] == EXIT_HANDLER_NAME
    )
    assert cleanup["dependentTasks"] == [handler_key]
    # plain strings only: the job id placeholder, never another task's output
    params = cleanup["inputs"]["parameters"]
    assert params["job_id"]["runtimeValue"]["constant"] == JOB_PLACEHOLDER
    assert all("taskOutputParameter" not in p for p in params.values())


def test_the_steps_run_in_order(spec):
    _, inner = _exit_handler(spec)
    edges = {name: tuple(sorted(t.get("dependentTasks", []))) for name, t in inner.items()}
    # the reference answers before the deploy: a reference that cannot be loaded costs none
    assert edges[DEPLOY_TASK] == ("endpoint-create", "reference-answers")
    assert edges["reference-answers"] == ()  # beside the endpoint's creation
    assert DEPLOY_TASK in edges["locust-load-test"]
    assert "reference-answers" in edges["locust-load-test"]
    # the record is written after the load test and before the gate judges
    assert edges["record-run"] == ("locust-load-test",)
    assert edges["slo-gate"] == ("locust-load-test", "record-run")


def test_every_parameter_has_the_documented_default(spec):
    params = spec["root"]["inputDefinitions"]["parameters"]
    for name, default in DEFAULTS.items():
        if name in ("model", "locustfile"):
            assert "defaultValue" not in params[name]
            continue
        assert params[name]["defaultValue"] == default, name


def test_caching_is_off_for_every_task(spec):
    tasks = list(spec["root"]["dag"]["tasks"].values())
    _, inner = _exit_handler(spec)
    tasks += list(inner.values())
    for task in tasks:
        if task["taskInfo"]["name"] == EXIT_HANDLER_NAME:
            continue
        assert task.get("cachingOptions", {}).get("enableCache", False) is False, task


def test_labels_come_from_a_plain_job_id_string(spec):
    labels = spec["root"]["dag"]["tasks"]["make-labels"]["inputs"]["parameters"]
    assert labels["job_id"]["runtimeValue"]["constant"] == JOB_PLACEHOLDER
    _, inner = _exit_handler(spec)
    create_labels = inner["endpoint-create"]["inputs"]["parameters"]["labels"]
    # inside the exit handler's sub-DAG the labels task's output arrives as a channel
    assert create_labels["componentInputParameter"] == "pipelinechannel--make-labels-Output"


def test_deploy_takes_machine_and_accelerator(spec):
    _, inner = _exit_handler(spec)
    params = inner[DEPLOY_TASK]["inputs"]["parameters"]
    for name, pipeline_param in {
        "dedicated_resources_machine_type": "machine_type",
        "dedicated_resources_accelerator_type": "accelerator_type",
        "dedicated_resources_accelerator_count": "accelerator_count",
        "dedicated_resources_min_replica_count": "min_replicas",
        "dedicated_resources_max_replica_count": "max_replicas",
    }.items():
        assert params[name]["componentInputParameter"] == f"pipelinechannel--{pipeline_param}"


def test_the_serving_api_is_decided_before_anything_is_created(spec):
    # A container no rule knows fails this task; the exit handler (create, deploy, ...)
    # waits for it, so nothing is created, and the load test speaks what it decided.
    root_tasks = spec["root"]["dag"]["tasks"]
    handler, inner = _exit_handler(spec)
    assert "serving-api" in handler["dependentTasks"]
    serving = root_tasks["serving-api"]
    assert serving["inputs"]["parameters"]["api"]["componentInputParameter"] == "api"
    channel = inner["locust-load-test"]["inputs"]["parameters"]["api"]["componentInputParameter"]
    produced = handler["inputs"]["parameters"][channel]["taskOutputParameter"]
    assert produced["producerTask"] == "serving-api"
    assert spec["root"]["inputDefinitions"]["parameters"]["api"]["defaultValue"] == "auto"


def test_the_clean_up_takes_the_exit_handlers_final_status_and_the_notify_parameters(spec):
    root = spec["root"]["dag"]["tasks"]
    cleanup = root["cleanup-endpoints"]
    assert cleanup["inputs"]["parameters"]["final_status"] == {
        "taskFinalStatus": {"producerTask": "exit-handler-1"}
    }
    for name in ("notify_webhook", "notify_webhook_secret", "notify_topic", "notify_timeout_s"):
        assert cleanup["inputs"]["parameters"][name] == {"componentInputParameter": name}
        assert (
            spec["root"]["inputDefinitions"]["parameters"][name]["defaultValue"] == (DEFAULTS[name])
        )
    # no email task unless asked for: the embedded Vertex AI could not run it
    assert not [t for t in root if "notification-email" in t]


def test_notify_email_compiles_gcpcs_email_op_after_the_exit_handler(tmp_path):
    emailed = yaml.safe_load(
        compile_pipeline(tmp_path / "p.yaml", notify_emails=("ops@example.com",)).read_text()
    )
    (task,) = [t for n, t in emailed["root"]["dag"]["tasks"].items() if "notification-email" in n]
    assert task["dependentTasks"] == ["exit-handler-1"]
    assert task["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert task["inputs"]["parameters"]["pipeline_task_final_status"] == {
        "taskFinalStatus": {"producerTask": "exit-handler-1"}
    }
    assert task["inputs"]["parameters"]["recipients"]["runtimeValue"]["constant"] == [
        "ops@example.com"
    ]
