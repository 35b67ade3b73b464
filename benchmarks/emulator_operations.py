"""How long GCPC's deploy launcher takes against the emulator, with and without the hold.

Google Cloud Pipeline Components' launchers sleep 20 s before each poll of an operation
that is not done (`_POLLING_INTERVAL_IN_SECONDS`). Through the emulator's HTTPS front, a
POST that starts an operation is answered once the operation is done or after
`--operation-hold-s`. This starts two emulators (hold 30 s, the default; hold 0, an
immediate pending answer), and in each runs the same thing: upload the fake model server
with the SDK, create an endpoint, then time `python -m ...deploy_model.launcher` (its
container command), all with only the env file applied. Prints both times and their
ratio; exit code 1 if the hold does not save at least 10 s.

    .venv/bin/python benchmarks/emulator_operations.py [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emulator.launcher import EmulatorProcess  # noqa: E402

SETUP = textwrap.dedent(
    """
    import json, sys
    from google.cloud import aiplatform
    aiplatform.init(project="bench", location="us-central1", api_transport="rest")
    model = aiplatform.Model.upload(
        display_name="fake", artifact_uri="gs://none/fake", serving_container_image_uri="x",
        serving_container_command=[sys.executable, sys.argv[1]],
        serving_container_environment_variables={"FAKE_LOAD_S": "1"})
    endpoint = aiplatform.Endpoint.create(display_name="bench")
    print(json.dumps({"model": model.resource_name, "endpoint": endpoint.resource_name}))
    """
)


def _env(emu: EmulatorProcess) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    return {**env, **emu.client_env(), "PYTHONPATH": str(ROOT)}


def deploy_seconds(hold_s: float, work: Path) -> float:
    """Seconds GCPC's deploy launcher runs against an emulator with this hold."""
    fake = ROOT / "tests" / "emulator" / "fake_model_server.py"
    with EmulatorProcess(
        work / f"emu-{hold_s}", extra_args=["--operation-hold-s", str(hold_s)]
    ) as emu:
        env = _env(emu)
        setup = subprocess.run(
            [sys.executable, "-c", SETUP, str(fake)], env=env, capture_output=True, text=True,
            check=True, timeout=120,
        )  # fmt: skip
        names = json.loads(setup.stdout.strip().splitlines()[-1])
        payload = {
            "endpoint": names["endpoint"],
            "traffic_split": {"0": 100},
            "deployed_model": {
                "model": names["model"],
                "dedicated_resources": {
                    "machine_spec": {"machine_type": "n1-standard-4"},
                    "min_replica_count": 1,
                },
            },
        }
        args = [
            sys.executable, "-u", "-m",
            "google_cloud_pipeline_components.container.v1.endpoint.deploy_model.launcher",
            "--type", "DeployModel", "--project", "", "--location", "",
            "--payload", json.dumps(payload), "--gcp_resources", str(work / f"gcp-{hold_s}"),
        ]  # fmt: skip
        start = time.monotonic()
        subprocess.run(args, env=env, check=True, timeout=300, capture_output=True)
        seconds = time.monotonic() - start
        undeploy = SETUP.split("aiplatform.init")[0] + textwrap.dedent(
            f"""
            aiplatform.init(project="bench", location="us-central1", api_transport="rest")
            endpoint = aiplatform.Endpoint({names["endpoint"]!r})
            endpoint.undeploy_all()
            """
        )
        subprocess.run(
            [sys.executable, "-c", undeploy], env=env, check=True, timeout=120, capture_output=True
        )
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deploytest-bench-ops-") as tmp:
        held = deploy_seconds(30.0, Path(tmp))
        immediate = deploy_seconds(0.0, Path(tmp))
    figures = {
        "gcpc_deploy_s_hold_30": round(held, 2),
        "gcpc_deploy_s_hold_0": round(immediate, 2),
        "ratio_hold0_over_hold30": round(immediate / held, 2),
    }
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    saved = immediate - held
    print(f"the hold saves {saved:.1f} s per GCPC deploy ({'ok' if saved >= 10 else 'MISSED'})")
    return 0 if saved >= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
