"""Machine profiles: the container variables a machine type (and accelerator) stands for in
the embedded Vertex AI, off unless asked for; a bad table is refused at start."""

import json
import subprocess
import sys

import pytest

from emulator.errors import ApiError
from emulator.machines import SHIPPED, MachineProfiles


def test_off_by_default_nothing_is_added():
    assert MachineProfiles.load(None).env_for("n1-standard-2", "NVIDIA_TESLA_T4") == {}


def test_the_shipped_table_makes_bigger_machines_faster_and_wider():
    table = MachineProfiles.load("default")
    small, big = table.env_for("n1-standard-2"), table.env_for("n1-standard-8")
    assert float(small["DEPLOYTEST_STEP_DELAY_MS"]) > float(big["DEPLOYTEST_STEP_DELAY_MS"])
    assert int(small["DEPLOYTEST_MAX_BATCH_SIZE"]) < int(big["DEPLOYTEST_MAX_BATCH_SIZE"])
    # an accelerator's row wins over its machine's; an unknown type gets nothing
    gpu = table.env_for("n1-standard-8", "NVIDIA_TESLA_T4")
    assert (
        gpu["DEPLOYTEST_STEP_DELAY_MS"]
        == json.loads(SHIPPED.read_text())["accelerators"]["NVIDIA_TESLA_T4"][
            "DEPLOYTEST_STEP_DELAY_MS"
        ]
    )
    assert table.env_for("z9-unknown") == {}


@pytest.mark.parametrize(
    "table",
    [
        [],
        {"machine_types": []},
        {"machine_types": {"n1-standard-2": {"lower": "1"}}},
        {"machine_types": {"n1-standard-2": {"DEPLOYTEST_STEP_DELAY_MS": 5}}},
    ],
)
def test_a_bad_table_is_refused(tmp_path, table):
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(table))
    with pytest.raises(ApiError):
        MachineProfiles.load(path)


def test_the_emulator_refuses_a_bad_table_before_it_starts(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    proc = subprocess.run(
        [sys.executable, "-m", "emulator", "--state-dir", str(tmp_path / "s"),
         "--machine-profiles", str(bad)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "not JSON" in proc.stdout + proc.stderr
    assert not (tmp_path / "s").exists()
