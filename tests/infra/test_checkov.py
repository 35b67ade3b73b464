"""checkov over the synthesised Terraform JSON: zero failed checks; skips listed with reasons."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from .conftest import CHECKOV, INFRA, Synth

CONFIG = INFRA / ".checkov.yaml"
SKIPS_DOC = INFRA / "CHECKOV_SKIPS.md"
CMEK_CHECKS = ("CKV_GCP_83", "CKV_GCP_84")


def run_checkov(*args: str) -> dict:
    if not CHECKOV.exists():
        pytest.skip(
            f"{CHECKOV} not found: `make .venv-checkov/.installed` creates it "
            "(`make test` does so before pytest)"
        )
    proc = subprocess.run(
        [str(CHECKOV), *args, "--output", "json", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    assert reports and all(r.get("check_type") == "terraform_json" for r in reports), report
    return reports[0]


def summary_line(report: dict) -> str:
    failed = report["results"]["failed_checks"]
    return "\n".join(f"{c['check_id']} {c['check_name']}: {c['resource']}" for c in failed)


def skipped_in_config() -> list[str]:
    return list(yaml.safe_load(CONFIG.read_text()).get("skip-check", []))


def test_checkov_passes_on_the_stack(synth: Synth) -> None:
    report = run_checkov(
        "-d", str(synth.outdir), "--framework", "terraform_json", "--config-file", str(CONFIG)
    )
    assert report["summary"]["failed"] == 0, summary_line(report)
    assert report["summary"]["passed"] >= 20  # it really scanned the stack
    assert report["summary"]["parsing_errors"] == 0


def test_every_skip_is_listed_with_a_reason() -> None:
    skips = skipped_in_config()
    assert skips, "no skips: drop this test's doc check or keep CHECKOV_SKIPS.md in step"
    rows = {
        m.group(1): m.group(2).strip()
        for m in re.finditer(
            r"^\|\s*(CKV2?_[A-Z]+_\d+)\s*\|[^|]*\|(.*)\|\s*$", SKIPS_DOC.read_text(), re.M
        )
    }
    for check in skips:
        assert check in rows, (
            f"{check} is skipped in .checkov.yaml but not listed in {SKIPS_DOC.name}"
        )
        assert len(rows[check]) > 20, f"{check} has no reason in {SKIPS_DOC.name}"
    assert set(rows) == set(skips), "CHECKOV_SKIPS.md lists checks that are not skipped"


def test_cmek_skips_are_only_for_the_optional_default(cmek_synth: Synth) -> None:
    """With a KMS key configured, the skipped CMEK checks pass for real."""
    assert set(CMEK_CHECKS) <= set(skipped_in_config())
    report = run_checkov(
        "-d",
        str(cmek_synth.outdir),
        "--framework",
        "terraform_json",
        "--check",
        ",".join(CMEK_CHECKS),
    )
    assert report["summary"]["failed"] == 0, summary_line(report)
    assert report["summary"]["passed"] == 4  # two repositories and the two topics
