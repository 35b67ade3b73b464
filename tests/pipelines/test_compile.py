"""The compiled graph: the exit handler wraps exactly the five guarded steps, clean-up
always runs, and both op sets give the same graph."""

import pytest
import yaml

from pipelines.compile import compile_pipeline
from pipelines.pipeline import DEFAULTS, EXIT_HANDLER_NAME

GUARDED = {"create-endpoint", "deploy-model", "locust-load-test", "record-run", "slo-gate"}
GUARDED_VERTEX = {"endpoint-create", "model-deploy", "locust-load-test", "record-run", "slo-gate"}


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled")
    return {
        target: yaml.safe_load(compile_pipeline(target, out / f"{target}.yaml").read_text())
        for target in ("vertex", "local")
    }


def _exit_handler(spec):
    root_tasks = spec["root"]["dag"]["tasks"]
    handlers = [t for t in root_tasks.values() if t["taskInfo"]["name"] == EXIT_HANDLER_NAME]
    assert len(handlers) == 1, f"one exit handler named {EXIT_HANDLER_NAME!r}"
    handler = handlers[0]
    return handler, spec["components"][handler["componentRef"]["name"]]["dag"]["tasks"]


def test_vertex_exit_handler_wraps_exactly_create_deploy_test_gate(specs):
    _, inner = _exit_handler(specs["vertex"])
    assert set(inner) == GUARDED_VERTEX
    # GCPC ops on Vertex
    executors = specs["vertex"]["deploymentSpec"]["executors"]
    images = {e["container"]["image"] for e in executors.values() if "container" in e}
    assert any("google-cloud-pipeline-components" in i for i in images)


JOB_PLACEHOLDER = {
    # vertex: the job's resource name, whose last segment is unique (components/labels.py)
    "vertex": "{{$.pipeline_job_resource_name}}",
    "local": "{{$.pipeline_job_name}}",  # kfp.local cannot resolve the resource name
}


def test_cleanup_is_the_exit_task_and_always_runs(specs):
    for target, spec in specs.items():
        root_tasks = spec["root"]["dag"]["tasks"]
        cleanup = root_tasks["cleanup-endpoints"]
        assert cleanup["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
        handler_key = next(
            k for k, t in root_tasks.items() if t["taskInfo"]["name"] == EXIT_HANDLER_NAME
        )
        assert cleanup["dependentTasks"] == [handler_key]
        # plain strings only: the job id placeholder, never another task's output
        params = cleanup["inputs"]["parameters"]
        assert params["job_id"]["runtimeValue"]["constant"] == JOB_PLACEHOLDER[target]
        assert all("taskOutputParameter" not in p for p in params.values())


def test_both_op_sets_give_the_same_graph(specs):
    def shape(spec):
        _, inner = _exit_handler(spec)
        rename = {"endpoint-create": "create-endpoint", "model-deploy": "deploy-model"}
        edges = {
            (
                rename.get(name, name),
                tuple(sorted(rename.get(d, d) for d in t.get("dependentTasks", []))),
            )
            for name, t in inner.items()
        }
        outer = set(spec["root"]["dag"]["tasks"])
        return edges, outer, set(spec["root"]["inputDefinitions"]["parameters"])

    vertex, local = shape(specs["vertex"]), shape(specs["local"])
    assert vertex == local
    edges = dict(vertex[0])
    assert edges["deploy-model"] == ("create-endpoint",)
    assert "deploy-model" in edges["locust-load-test"]
    # the record is written after the load test and before the gate judges
    assert edges["record-run"] == ("locust-load-test",)
    assert edges["slo-gate"] == ("locust-load-test", "record-run")
    _, inner = _exit_handler(specs["local"])
    assert set(inner) == GUARDED


def test_every_parameter_has_the_documented_default(specs):
    params = specs["vertex"]["root"]["inputDefinitions"]["parameters"]
    for name, default in DEFAULTS.items():
        if name in ("model", "locustfile"):
            assert "defaultValue" not in params[name]
            continue
        assert params[name]["defaultValue"] == default, name


def test_caching_is_off_for_every_task(specs):
    for spec in specs.values():
        tasks = list(spec["root"]["dag"]["tasks"].values())
        _, inner = _exit_handler(spec)
        tasks += list(inner.values())
        for task in tasks:
            if task["taskInfo"]["name"] == EXIT_HANDLER_NAME:
                continue
            assert task.get("cachingOptions", {}).get("enableCache", False) is False, task


def test_labels_come_from_a_plain_job_id_string(specs):
    labels = specs["vertex"]["root"]["dag"]["tasks"]["make-labels"]["inputs"]["parameters"]
    assert labels["job_id"]["runtimeValue"]["constant"] == JOB_PLACEHOLDER["vertex"]
    _, inner = _exit_handler(specs["vertex"])
    create_labels = inner["endpoint-create"]["inputs"]["parameters"]["labels"]
    # inside the exit handler's sub-DAG the labels task's output arrives as a channel
    assert create_labels["componentInputParameter"] == "pipelinechannel--make-labels-Output"


def test_vertex_deploy_takes_machine_and_accelerator(specs):
    _, inner = _exit_handler(specs["vertex"])
    params = inner["model-deploy"]["inputs"]["parameters"]
    for name, pipeline_param in {
        "dedicated_resources_machine_type": "machine_type",
        "dedicated_resources_accelerator_type": "accelerator_type",
        "dedicated_resources_accelerator_count": "accelerator_count",
        "dedicated_resources_min_replica_count": "min_replicas",
        "dedicated_resources_max_replica_count": "max_replicas",
    }.items():
        assert params[name]["componentInputParameter"] == f"pipelinechannel--{pipeline_param}"
