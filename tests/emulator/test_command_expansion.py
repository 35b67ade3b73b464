"""`$(VAR)` in a model's containerSpec command and args, expanded as Vertex AI documents."""

from __future__ import annotations

import pytest

from emulator.deployments import Deployments, expand_references
from emulator.faults import FaultState
from emulator.operations import Operations
from emulator.store import DeployedRow, Store

ENV = {"AIP_HTTP_PORT": "8080", "MODEL": "/m/tiny", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("--port=$(AIP_HTTP_PORT)", "--port=8080"),
        ("$(MODEL)/$(AIP_HTTP_PORT)", "/m/tiny/8080"),
        ("$(EMPTY)x", "x"),
        ("$$(AIP_HTTP_PORT)", "$(AIP_HTTP_PORT)"),  # escaped
        ("$$$(AIP_HTTP_PORT)", "$8080"),
        ("a$$b", "a$b"),
        ("$(UNKNOWN)", "$(UNKNOWN)"),  # unresolved: used unchanged
        ("$()", "$()"),
        ("$(AIP_HTTP_PORT", "$(AIP_HTTP_PORT"),  # unclosed
        ("$AIP_HTTP_PORT ${AIP_HTTP_PORT}", "$AIP_HTTP_PORT ${AIP_HTTP_PORT}"),  # not bash
        ("cost $5 $", "cost $5 $"),
        ("", ""),
    ],
)
def test_expand_references(text, expanded):
    assert expand_references(text, ENV) == expanded


def test_command_and_args_expand_from_spec_env_and_aip_variables(tmp_path):
    store = Store(tmp_path / "state.db")
    deployments = Deployments(
        store, Operations(store), FaultState(), tmp_path, tmp_path / "gcs", deploy_timeout_s=5
    )
    deployments.client_env = {"CLIENT_ONLY": "secret-host"}
    model = "projects/p/locations/us-central1/models/1"
    store.put_resource(
        "models",
        "projects/p/locations/us-central1",
        {
            "name": model,
            "artifactUri": "/models/tiny",
            "containerSpec": {
                "command": ["serve", "--model=$(MODEL_DIR)"],
                "args": ["--port", "$(AIP_HTTP_PORT)", "$$(AIP_HTTP_PORT)", "$(CLIENT_ONLY)"],
                "env": [{"name": "MODEL_DIR", "value": "/models/tiny"}],
            },
        },
    )
    row = DeployedRow(
        "projects/p/locations/us-central1/endpoints/2", "3", {"model": model}, "DEPLOYING",
        "", "", None, None, None,
    )  # fmt: skip
    command, env, _ = deployments._command_env(row, 4321)
    assert command == [
        "serve",
        "--model=/models/tiny",
        "--port",
        "4321",
        "$(AIP_HTTP_PORT)",
        "$(CLIENT_ONLY)",  # the emulator's client env is not the container's documented env
    ]
    assert env["AIP_HTTP_PORT"] == "4321" and env["CLIENT_ONLY"] == "secret-host"
    store.close()
