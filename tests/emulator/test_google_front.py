"""The HTTPS front's contracts: what the proxy refuses, tokens, error shapes, cancel.

Each client call runs in a subprocess with only the emulator's env file applied (see
test_google_clients.py), so this test process's own environment stays clean.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from emulator.auth import TokenAuthority
from emulator.envfile import read_env_file
from emulator.launcher import EmulatorProcess
from tests.emulator.conftest import FAKE_SERVER
from tests.emulator.test_google_clients import ROOT, clean_environment, run_with_env

# Client code (run with the env file): the fake model server uploaded, an endpoint created.
SETUP_FAKE = f"""
import json, sys
from google.cloud import aiplatform
aiplatform.init(project="p", location="us-central1", api_transport="rest")
model = aiplatform.Model.upload(
    display_name="fake", artifact_uri="gs://none/fake", serving_container_image_uri="x",
    serving_container_command=[sys.executable, {FAKE_SERVER!r}])
endpoint = aiplatform.Endpoint.create(display_name="e")
"""


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    """One emulator with an env file; operations held for at most 1 s."""
    tmp = tmp_path_factory.mktemp("front")
    env_file = tmp / "emulator.env"
    emu = EmulatorProcess(
        tmp / "emu", extra_args=["--env-file", str(env_file), "--operation-hold-s", "1"]
    )
    emu.start()
    try:
        yield emu, env_file
    finally:
        emu.stop()


def run_code(env_file, code: str) -> dict:
    """Run `code` (which prints one JSON line last) with the env file; return that JSON."""
    proc = run_with_env(env_file, ["-c", textwrap.dedent(code)], timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_other_hosts_get_502_and_nothing_leaves_the_machine(front):
    emu, env_file = front
    out = run_code(
        env_file,
        """
        import json, requests
        seen = {}
        for url in ("https://example.com/", "https://www.googleapis.com/x",
                    "http://storage.googleapis.com/storage/v1/b", "https://8.8.8.8/"):
            try:
                r = requests.get(url, timeout=10)
                # a plain-http request is proxied as such: the proxy's 502 is the answer
                seen[url] = str(r.status_code) if "emulator proxy" in r.text else r.text
            except requests.exceptions.ProxyError as exc:
                seen[url] = "502" if "502" in str(exc) else repr(exc)
            except requests.exceptions.RequestException as exc:
                seen[url] = repr(exc)
        print(json.dumps(seen))
        """,
    )
    assert set(out.values()) == {"502"}, out
    for conn in psutil.Process(emu.pid).net_connections(kind="inet"):
        assert not conn.raddr or conn.raddr.ip in ("127.0.0.1", "::1"), conn
    assert "refused CONNECT example.com:443" in emu.log_text()


def test_bad_tokens_get_googles_401_and_refresh_errors(front):
    emu, env_file = front
    out = run_code(
        env_file,
        """
        import json, requests, google.auth, google.auth.transport.requests
        from google.auth.exceptions import RefreshError
        from google.oauth2.credentials import Credentials
        out = {}
        for name, url in (
            ("vertex", "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/endpoints"),
            ("storage", "https://storage.googleapis.com/storage/v1/b?project=p"),
            ("registry", "https://us-central1-kfp.pkg.dev/p/repo/pkg/tag"),
        ):
            for token in ("ya29.wrong", None):
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                r = requests.get(url, headers=headers, timeout=10)
                out[f"{name}-{bool(token)}"] = [r.status_code, r.json()["error"]]
        creds, project = google.auth.default()
        creds.refresh(google.auth.transport.requests.Request())
        out["project"] = project
        out["refreshed"] = requests.get(
            "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/endpoints",
            headers={"Authorization": f"Bearer {creds.token}"}, timeout=10).status_code
        bad = Credentials(None, refresh_token="1//wrong", client_id=creds.client_id,
                          client_secret=creds.client_secret, token_uri=creds.token_uri)
        try:
            bad.refresh(google.auth.transport.requests.Request())
            out["bad_refresh"] = "refreshed"
        except RefreshError as exc:
            out["bad_refresh"] = str(exc)
        print(json.dumps(out))
        """,
    )
    for name in ("vertex", "registry"):
        for sent in (True, False):
            code, error = out[f"{name}-{sent}"]
            assert code == 401 and error["status"] == "UNAUTHENTICATED", out
    code, error = out["storage-True"]
    assert code == 401 and error["errors"][0]["reason"] == "authError"
    assert out["project"] == "deploytest-local" and out["refreshed"] == 200
    assert "invalid_grant" in out["bad_refresh"]


def test_operation_cancel_through_the_sdk(front):
    emu, env_file = front
    emu.set_faults({"deploy": "hang"})
    try:
        out = run_code(
            env_file,
            SETUP_FAKE
            + textwrap.dedent(
                """
            from google.api_core import exceptions
            from google.cloud.aiplatform_v1 import types
            client = endpoint.api_client
            lro = client.deploy_model(
                endpoint=endpoint.resource_name, traffic_split={"0": 100},
                deployed_model=types.DeployedModel(
                    model=model.resource_name,
                    dedicated_resources=types.DedicatedResources(
                        machine_spec=types.MachineSpec(machine_type="n1-standard-4"),
                        min_replica_count=1)))
            pending = not lro.done()
            client.cancel_operation(request={"name": lro.operation.name})
            try:
                lro.result(timeout=60)
                outcome = "succeeded"
            except exceptions.Cancelled:
                outcome = "cancelled"
            left = len(aiplatform.Endpoint(endpoint.resource_name).list_models())
            endpoint.delete()
            model.delete()
            print(json.dumps({"pending": pending, "outcome": outcome, "left": left}))
            """
            ),
        )
    finally:
        emu.clear_faults()
    assert out == {"pending": True, "outcome": "cancelled", "left": 0}
    assert emu.processes() == []


def test_tokens_are_per_instance_and_expire(tmp_path):
    one, other = TokenAuthority(tmp_path / "a"), TokenAuthority(tmp_path / "b")
    token, lifetime = one.issue()
    assert one.verify(token) and one.verify_header(f"Bearer {token}")
    assert not other.verify(token)
    assert not one.verify(token, now=time.time() + lifetime + 2)
    assert not one.verify(token[:-2] + "xx") and not one.verify(None)
    assert TokenAuthority(tmp_path / "a").verify(token)  # same state folder, same instance
    assert oct((tmp_path / "a" / "secret").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--env-file", "{tmp}/no/env"], "--env-file"),
        (["--project", "../x"], "--project"),
        (["--operation-hold-s", "-1"], "--operation-hold-s"),
    ],
)
def test_bad_front_arguments_exit_2_before_anything_is_created(tmp_path, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "emulator", "--state-dir", str(tmp_path / "s"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and message in proc.stdout
    assert not (tmp_path / "s").exists()


def _get(emu: EmulatorProcess, name: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"{emu.url}/v1/{name}", timeout=10) as resp:
        return json.load(resp)


def test_gcpc_deploy_launcher_cancels_its_operation_on_sigterm(front, tmp_path):
    emu, env_file = front
    names = run_code(
        env_file,
        SETUP_FAKE
        + 'print(json.dumps({"model": model.resource_name, "endpoint": endpoint.resource_name}))',
    )
    payload = {
        "endpoint": names["endpoint"],
        "deployed_model": {
            "model": names["model"],
            "dedicated_resources": {"machine_spec": {"machine_type": "n1-standard-4"}},
        },
    }
    env = {**clean_environment(), **read_env_file(env_file), "PYTHONPATH": str(ROOT)}
    emu.set_faults({"deploy": "hang"})
    try:
        launcher = subprocess.Popen(
            [sys.executable, "-u", "-m",
             "google_cloud_pipeline_components.container.v1.endpoint.deploy_model.launcher",
             "--type", "DeployModel", "--project", "", "--location", "",
             "--payload", json.dumps(payload), "--gcp_resources", str(tmp_path / "gcp_resources")],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not (tmp_path / "gcp_resources").exists() and time.monotonic() < deadline:
            time.sleep(0.2)  # written once the operation is created (then it polls, 20 s)
        assert _get(emu, names["endpoint"]).get("deployedModels"), "deploy not in flight"
        launcher.send_signal(signal.SIGTERM)
        output, _ = launcher.communicate(timeout=60)
        lro = json.loads((tmp_path / "gcp_resources").read_text())["resources"][0]
        operation = _get(emu, lro["resourceUri"].split("/v1/", 1)[1])
    finally:
        emu.clear_faults()
    assert operation["done"] and operation["error"]["code"] == 1, (operation, output)  # CANCELLED
    assert "deployedModels" not in _get(emu, names["endpoint"])
    assert emu.processes() == []


def test_missing_buckets_objects_and_tags_raise_the_clients_real_errors(front):
    emu, env_file = front
    out = run_code(
        env_file,
        """
        import json, requests
        from google.api_core import exceptions
        from google.cloud import storage
        from kfp.registry import RegistryClient
        out = {}
        client = storage.Client()
        client.create_bucket("errs")
        for key, call in (
            ("bucket", lambda: client.get_bucket("no-such-bucket")),
            ("object", lambda: client.bucket("errs").blob("dir/none").reload()),
            ("media", lambda: client.bucket("errs").blob("dir/none").download_as_bytes()),
            ("again", lambda: client.create_bucket("errs")),
        ):
            try:
                call()
                out[key] = "ok"
            except exceptions.GoogleAPICallError as exc:
                out[key] = [type(exc).__name__, exc.message]
        client.bucket("errs").delete()
        registry = RegistryClient(host="https://us-central1-kfp.pkg.dev/p/none")
        try:
            registry.get_tag("pkg", "v1")
        except requests.HTTPError as exc:
            out["tag"] = [exc.response.status_code, exc.response.json()["error"]["status"]]
        print(json.dumps(out))
        """,
    )
    assert out["bucket"][0] == "NotFound"
    assert out["bucket"][1].endswith(": The specified bucket does not exist.")
    assert out["object"][0] == "NotFound"
    assert out["object"][1].endswith(": No such object: errs/dir/none")
    assert out["media"][0] == "NotFound"
    assert out["again"][0] == "Conflict"
    assert out["tag"] == [404, "NOT_FOUND"]
