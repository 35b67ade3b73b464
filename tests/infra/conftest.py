"""Shared fixtures: the stack is synthesised once per test session (the Google provider
takes ~15 s to load into jsii), with the real `deploytest submit` producing the Scheduler
body. Tests that need no synth import `deploytest_infra` directly (plain Python)."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
if str(INFRA) not in sys.path:
    sys.path.insert(0, str(INFRA))

from deploytest_infra import silence_node_warnings  # noqa: E402
from deploytest_infra.settings import InfraSettings  # noqa: E402

CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
KMS_KEY = "projects/deploytest-demo/locations/us-central1/keyRings/deploytest/cryptoKeys/data"
PINNED = "sha256:" + "5" * 64


@dataclass(frozen=True)
class Synth:
    settings: InfraSettings
    config: dict  # the stack's cdk.tf.json
    outdir: Path  # the whole cdktf.out-like directory (stacks/<name>/cdk.tf.json)

    def resources(self, tf_type: str) -> dict[str, dict]:
        return self.config.get("resource", {}).get(tf_type, {})

    def one(self, tf_type: str) -> dict:
        found = self.resources(tf_type)
        assert len(found) == 1, f"expected one {tf_type}, found {sorted(found)}"
        return next(iter(found.values()))


def require_node() -> None:
    if shutil.which("node") is None:
        pytest.skip("CDKTF synth needs Node.js (jsii) on PATH; not found")


def _synth(settings: InfraSettings) -> Synth:
    require_node()
    silence_node_warnings()
    from cdktf import Testing
    from deploytest_infra.stack import DeploytestStack

    app = Testing.app()
    stack = DeploytestStack(app, settings)
    outdir = Path(Testing.full_synth(stack))
    config = json.loads((outdir / "stacks" / settings.stack_name / "cdk.tf.json").read_text())
    return Synth(settings, config, outdir)


@pytest.fixture(scope="session")
def settings() -> InfraSettings:
    return InfraSettings()


@pytest.fixture(scope="session")
def synth(settings: InfraSettings) -> Synth:
    """The default stack, synthesised once per session."""
    return _synth(settings)


@pytest.fixture(scope="session")
def cmek_synth(synth: Synth) -> Synth:
    """The stack with CMEK, a GCS state backend and the run-end webhook secret (the
    provider is loaded by now: quick)."""
    return _synth(
        InfraSettings(
            kms_key_name=KMS_KEY,
            environment="cmek",
            state_bucket="deploytest-demo-tfstate",
            notify_webhook_secret=True,
        )
    )


@pytest.fixture(scope="session")
def pinned_synth(synth: Synth) -> Synth:
    """The Scheduler pinned to a template version, and merges that run the load test."""
    return _synth(
        InfraSettings(environment="pinned", scheduler_template=PINNED, merge_runs_load_test=True)
    )


ENVIRONMENTS = ("dev", "test", "prod")


@pytest.fixture(scope="session")
def env_synths(synth: Synth) -> dict[str, Synth]:
    """Every environment of settings.example.json, each its own stack in one app."""
    from deploytest_infra.environments import load_environments

    return {s.environment: _synth(s) for s in load_environments(INFRA / "settings.example.json")}
