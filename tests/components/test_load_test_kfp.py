"""The load-test and SLO-gate components: KFP compile wiring, and real runs through kfp.local."""

# No `from __future__ import annotations`: KFP reads the pipeline's real annotations.

import json
import warnings
from pathlib import Path

import pytest
import yaml
from kfp import compiler, dsl, local

from components.load_test import COMPONENT_IMAGE, locust_load_test
from components.metrics_schema import LOGGED_METRICS, LoadTestMetrics
from components.slo_gate import slo_gate
from tests.components.conftest import LOCUSTFILE
from tests.components.predict_server import PredictServer

pytestmark = pytest.mark.usefixtures("no_process_left_behind")

RESOURCE_NAME = "projects/p/locations/l/endpoints/1"


def test_vertex_endpoint_output_feeds_the_load_test(tmp_path):
    """GCPC's EndpointCreateOp `google.VertexEndpoint` output wires into `Input[Artifact]`."""
    from google_cloud_pipeline_components.v1.endpoint import EndpointCreateOp

    @dsl.pipeline(name="wiring")
    def wiring(project: str, location: str):
        locustfile = dsl.importer(
            artifact_uri="gs://bucket/loadtests/locustfile.py", artifact_class=dsl.Artifact
        )
        create = EndpointCreateOp(project=project, location=location, display_name="e")
        test = locust_load_test(
            locustfile=locustfile.output,
            endpoint=create.outputs["endpoint"],
            api_endpoint="",
            location=location,
            users=4,
            spawn_rate=1.0,
            duration="1m",
            processes=-1,
            max_new_tokens=16,
        )
        slo_gate(
            metrics=test.outputs["metrics"],
            max_p95_ms=1000.0,
            max_failure_ratio=0.01,
            min_rps=1.0,
        )

    package = tmp_path / "wiring.yaml"
    compiler.Compiler().compile(wiring, str(package))
    spec = yaml.safe_load(package.read_text())
    components = spec["components"]
    create_out = components["comp-endpoint-create"]["outputDefinitions"]["artifacts"]["endpoint"]
    assert create_out["artifactType"]["schemaTitle"] == "google.VertexEndpoint"
    test_in = components["comp-locust-load-test"]["inputDefinitions"]["artifacts"]["endpoint"]
    assert test_in["artifactType"]["schemaTitle"] == "system.Artifact"
    test_out = components["comp-locust-load-test"]["outputDefinitions"]["artifacts"]
    assert test_out["report"]["artifactType"]["schemaTitle"] == "system.HTML"
    assert test_out["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    tasks = spec["root"]["dag"]["tasks"]
    endpoint_arg = tasks["locust-load-test"]["inputs"]["artifacts"]["endpoint"]
    assert endpoint_arg["taskOutputArtifact"] == {
        "outputArtifactKey": "endpoint",
        "producerTask": "endpoint-create",
    }
    gate_arg = tasks["slo-gate"]["inputs"]["artifacts"]["metrics"]["taskOutputArtifact"]
    assert gate_arg == {"outputArtifactKey": "metrics", "producerTask": "locust-load-test"}
    executors = spec["deploymentSpec"]["executors"]
    for name in ("exec-locust-load-test", "exec-slo-gate"):
        container = executors[name]["container"]
        assert container["image"] == COMPONENT_IMAGE
        assert "pip install" not in " ".join(container["command"])  # kfp lives in the image


@dsl.pipeline(name="load-test-and-gate")
def _load_test_pipeline(
    locustfile_uri: str, api_endpoint: str, max_p95_ms: float, min_rps: float
) -> str:
    locustfile = dsl.importer(artifact_uri=locustfile_uri, artifact_class=dsl.Artifact)
    endpoint = dsl.importer(
        artifact_uri=f"https://l-aiplatform.googleapis.com/v1/{RESOURCE_NAME}",
        artifact_class=dsl.Artifact,
        metadata={"resourceName": RESOURCE_NAME},
    )
    test = locust_load_test(
        locustfile=locustfile.output,
        endpoint=endpoint.output,
        api_endpoint=api_endpoint,
        location="l",
        users=2,
        spawn_rate=2.0,
        duration="3s",
        processes=1,
        max_new_tokens=4,
    )
    gate = slo_gate(
        metrics=test.outputs["metrics"],
        max_p95_ms=max_p95_ms,
        max_failure_ratio=0.01,
        min_rps=min_rps,
    )
    return gate.output


@pytest.fixture
def kfp_local(tmp_path):
    root = tmp_path / "pipeline_root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    with warnings.catch_warnings():
        # The component image is not a "python" image; SubprocessRunner ignores it anyway.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        yield root


def _load_test_outputs(root: Path) -> dict:
    (executor_output,) = root.glob("*/locust-load-test/executor_output.json")
    return json.loads(executor_output.read_text())["artifacts"]


def test_local_run_passes_the_gate(kfp_local, capsys):
    with PredictServer("ok") as server:
        task = _load_test_pipeline(
            locustfile_uri=str(LOCUSTFILE),
            api_endpoint=server.url,
            max_p95_ms=5000.0,
            min_rps=1.0,
        )
        assert server.requests > 0 and not server.bad_paths
    assert task.output == "PASS"
    artifacts = _load_test_outputs(kfp_local)
    (metrics,) = artifacts["metrics"]["artifacts"]
    logged = metrics["metadata"]
    assert set(LOGGED_METRICS) <= set(logged)
    assert logged["requests"] > 0 and logged["rps"] > 0 and logged["failure_ratio"] == 0.0
    assert logged["p95_ms"] >= logged["p50_ms"] > 0
    assert logged["output_tokens"] == 4 * logged["requests"]
    (report,) = artifacts["report"]["artifacts"]
    assert "<html" in Path(report["uri"]).read_text()[:2000].lower()
    (stats,) = artifacts["stats"]["artifacts"]
    stats_dir = Path(stats["uri"])
    for name in ("locust_stats.csv", "locust_stats.json", "locust_failures.csv", "metrics.json"):
        assert (stats_dir / name).is_file(), name
    stored = LoadTestMetrics.from_json((stats_dir / "metrics.json").read_text())
    assert stored.path == f"/v1/{RESOURCE_NAME}:predict" and stored.host == server.url
    assert {k: getattr(stored, k) for k in LOGGED_METRICS} == {k: logged[k] for k in LOGGED_METRICS}
    assert stats["metadata"]["endpoint"] == RESOURCE_NAME
    out = capsys.readouterr().out
    assert "SLO verdict: PASS" in out


def test_local_run_fails_the_gate_after_writing_the_report(kfp_local, capsys):
    with PredictServer("ok") as server:
        with pytest.raises(RuntimeError, match="slo-gate"):
            _load_test_pipeline(
                locustfile_uri=str(LOCUSTFILE),
                api_endpoint=server.url,
                max_p95_ms=0.001,
                min_rps=1e9,
            )
    out = capsys.readouterr().out
    assert "SLO verdict: FAIL" in out
    assert "SLO missed:" in out and "p95_ms" in out and "rps" in out
    assert "failure_ratio 0" not in out.split("SLO missed:")[1].splitlines()[0]
    artifacts = _load_test_outputs(kfp_local)
    (report,) = artifacts["report"]["artifacts"]
    assert Path(report["uri"]).stat().st_size > 0
