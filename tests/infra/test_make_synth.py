"""`make synth` runs `cd infra && ../.venv/bin/python main.py`: it must work offline and
write the Terraform JSON under infra/cdktf.out/stacks/<stack>/cdk.tf.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .conftest import INFRA, require_node


def test_main_writes_the_terraform_json(tmp_path) -> None:
    require_node()
    out = tmp_path / "cdktf.out"
    env = {**os.environ, "CDKTF_OUTDIR": str(out)}
    env.pop("DEPLOYTEST_INFRA_SETTINGS", None)
    proc = subprocess.run(
        [sys.executable, "main.py"], cwd=INFRA, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((out / "stacks" / "deploytest-dev" / "cdk.tf.json").read_text())
    assert "google_cloud_scheduler_job" in config["resource"]
    assert "!!" not in proc.stderr  # no jsii Node.js banner


def test_cdktf_json_runs_main_with_the_venv() -> None:
    cfg = json.loads((INFRA / "cdktf.json").read_text())
    assert cfg["language"] == "python"
    assert cfg["app"] == "../.venv/bin/python main.py"
    assert cfg["terraformProviders"] == []  # prebuilt provider package, no `cdktf get`
