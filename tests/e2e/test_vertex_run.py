"""End-to-end: `deploytest run --pipeline vertex`, the vertex YAML submitted like
`deploytest submit` to the emulator's Vertex AI Pipelines: success, the deploy timeout that
GCPC's launcher does not keep, and Ctrl-C. Each run checks its summary.json and that no
endpoint and no process is left."""

import json
import signal

import pytest

from tests.e2e.test_local_run import assert_nothing_left, run

pytestmark = pytest.mark.slow
VERTEX = ("--pipeline", "vertex")


def summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def test_the_vertex_yaml_passes_with_gcpc_tasks(tmp_path, cache_dir, emulator):
    code, out, run_dir = run(
        tmp_path, cache_dir, *VERTEX, "--api-endpoint", emulator.url, run_id="vx-pass"
    )
    assert code == 0, out
    s = summary(run_dir)
    assert s["pipeline_job"].endswith("/pipelineJobs/vx-pass")
    assert set(s["tasks"].values()) == {"SUCCESS"}, s["tasks"]
    # GCPC's own create and deploy tasks, not ours
    assert {"endpoint-create", "model-deploy", "cleanup-endpoints"} <= set(s["tasks"])
    # the label is the job id, from the job's resource name (run_id is empty on this path)
    assert json.loads((run_dir / "arguments.json").read_text())["run_id"] == ""
    assert s["cleanup"]["run_label"] == "vx-pass" and s["cleanup"]["ok"]
    assert s["metrics"]["requests"] > 0 and s["metrics"]["failure_ratio"] == 0
    assert "<html" in (run_dir / "report.html").read_text().lower()
    assert_nothing_left("vx-pass", out, emulator)


def test_a_hung_deploy_is_cancelled_at_the_deploy_timeout(tmp_path, cache_dir, emulator):
    code, out, run_dir = run(
        tmp_path, cache_dir, *VERTEX, "--api-endpoint", emulator.url, "--fault", "deploy-hang",
        run_id="vx-hang",
    )  # fmt: skip
    assert code == 1, out
    s = summary(run_dir)
    assert s["tasks"]["model-deploy"] == "CANCELLED"
    assert s["tasks"]["cleanup-endpoints"] == "SUCCESS"
    assert "locust-load-test" not in s["tasks"]
    assert s["cleanup"]["ok"] and s["cleanup"]["endpoints"][0]["deleted"]
    assert_nothing_left("vx-hang", out, emulator)
    assert emulator.get_faults()["deploy"] is None


def test_ctrl_c_cancels_the_job_and_its_exit_handler_cleans_up(tmp_path, cache_dir, emulator):
    rc, out, run_dir = run(
        tmp_path, cache_dir, *VERTEX, "--api-endpoint", emulator.url, "--duration", "60s",
        run_id="vx-cancel", stop_at="locust-load-test", signum=signal.SIGINT,
    )  # fmt: skip
    assert rc == 130, out
    assert "cancelling the pipeline job" in out and "pipeline job CANCELLED" in out
    assert "✔ cleanup-endpoints: SUCCESS" in out
    assert_nothing_left("vx-cancel", out, emulator)


def test_submit_wait_cancels_a_deploy_that_outlives_its_timeout(tmp_path, cache_dir, monkeypatch):
    """GCPC's deploy launcher never gives up on a deploy that does not become ready;
    `deploytest submit --wait` keeps the run's deploy timeout by cancelling the job."""
    import subprocess
    import sys

    from google.cloud import storage

    from components.endpoint_cleanup import list_run_endpoints
    from components.vertex_clients import endpoint_client
    from emulator.launcher import EmulatorProcess
    from pipelines.local_model import ensure_demo_model, register_model

    project = "deploytest-demo"
    repo = f"us-central1-docker.pkg.dev/{project}/r/components"
    model_dir = ensure_demo_model(cache_dir, "tiny", lambda _: None)
    args = ["--local-image", repo]
    with EmulatorProcess(tmp_path / "emu", faults={"deploy": "hang"}, extra_args=args) as emu:
        for key, value in emu.client_env().items():
            monkeypatch.setenv(key, value)
        client = storage.Client(project=project)
        for bucket in ("root", "tests"):
            client.create_bucket(bucket)
        client.bucket("tests").blob("locustfile.py").upload_from_filename("loadtests/locustfile.py")
        model = register_model(project, "us-central1", "", model_dir, "tiny")
        deploytest = [sys.executable, "-m", "deploytest"]
        compiled = tmp_path / "pipeline.yaml"
        subprocess.run(
            [*deploytest, "compile", "--target", "vertex", "--component-image", f"{repo}:t",
             "-o", str(compiled)], check=True, capture_output=True,
        )  # fmt: skip
        done = subprocess.run(
            [*deploytest, "submit", "--wait", "--poll-s", "1", "--project", project,
             "--location", "us-central1", "--pipeline-root", "gs://root/runs",
             "--service-account", f"runner@{project}.iam.gserviceaccount.com", "--model", model,
             "--locustfile", "gs://tests/locustfile.py", "--pipeline-file", str(compiled),
             "--deploy-timeout-s", "5"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        out = done.stdout + done.stderr
        assert done.returncode == 1, out
        assert "model-deploy still running after" in out and "CANCELLED" in out, out
        assert emu.processes() == []
        ep_client = endpoint_client("us-central1", emu.url)
        name = next(line.split()[-1] for line in out.splitlines() if line.startswith("submitted"))
        label = name.rsplit("/", 1)[-1]
        assert list_run_endpoints(ep_client, project, "us-central1", label) == []
