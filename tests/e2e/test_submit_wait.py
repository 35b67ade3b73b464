"""End-to-end: `deploytest submit --wait` against the embedded Vertex AI keeps the run's
deploy timeout, which GCPC's deploy launcher does not."""

import pytest

pytestmark = pytest.mark.slow


def test_submit_wait_cancels_a_deploy_that_outlives_its_timeout(tmp_path, cache_dir, monkeypatch):
    """GCPC's deploy launcher never gives up on a deploy that does not become ready;
    `deploytest submit --wait` keeps the run's deploy timeout by cancelling the job."""
    import subprocess
    import sys

    from google.cloud import storage

    from components.runtime.cleanup import list_run_endpoints
    from components.vertex_clients import endpoint_client
    from deploytest.run.demo_model import ensure_demo_model, register_model
    from emulator.launcher import EmulatorProcess

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
            [*deploytest, "compile", "--component-image", f"{repo}:t",
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
