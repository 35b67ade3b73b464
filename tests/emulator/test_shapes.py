"""Unit checks: every JSON shape parses strictly into the SDK's protos; filters; errors; CLI."""

from __future__ import annotations

import argparse

import pytest
from google.longrunning import operations_pb2
from google.protobuf import json_format

from emulator import filters
from emulator import resources as res
from emulator.app import normalize_numbers
from emulator.errors import ApiError, rpc_status


def _strict(message_cls, data: dict):
    """Parse like the SDK's operations client does: unknown fields are errors."""
    return json_format.ParseDict(data, message_cls.pb()(), ignore_unknown_fields=False)


def test_resources_parse_strictly_into_protos():
    from google.cloud.aiplatform_v1.types import endpoint as endpoint_pb
    from google.cloud.aiplatform_v1.types import model as model_pb

    t = res.now()
    model = res.model_resource(
        "projects/p/locations/l/models/1",
        {
            "displayName": "m",
            "artifactUri": "gs://b/x",
            "labels": {"a": "b"},
            "containerSpec": {
                "imageUri": "i",
                "command": ["python"],
                "args": ["-m", "serving"],
                "env": [{"name": "A", "value": "1"}],
                "ports": [{"containerPort": 8080}],
                "predictRoute": "/p",
                "healthRoute": "/h",
            },
        },
        t,
    )
    _strict(model_pb.Model, model)
    assert model["modelSourceInfo"] == {"sourceType": "CUSTOM"}
    # GCPC's launchers send int32s as strings; Vertex AI answers numbers, and the maximum
    # defaults to the minimum (DedicatedResources.max_replica_count)
    resources = {"machineSpec": {"machineType": "n1"}, "minReplicaCount": "2"}
    dm = res.deployed_model_resource("2", model, {"dedicatedResources": resources}, t)
    assert dm["dedicatedResources"]["minReplicaCount"] == 2
    assert dm["dedicatedResources"]["maxReplicaCount"] == 2
    for bad in (
        {"minReplicaCount": -1},
        {"minReplicaCount": "x"},
        {"minReplicaCount": 2, "maxReplicaCount": 1},
    ):
        with pytest.raises(ApiError):
            res.deployed_model_resource("2", model, {"dedicatedResources": bad}, t)
    dm["status"] = {"message": "restarted", "availableReplicaCount": 1}
    endpoint = res.endpoint_resource("projects/p/locations/l/endpoints/3", {"displayName": "e"}, t)
    endpoint |= {"deployedModels": [dm], "trafficSplit": {"2": 100}}
    _strict(endpoint_pb.Endpoint, endpoint)


@pytest.mark.parametrize(
    "metadata, response_type, response",
    [
        (
            res.UPLOAD_MODEL_METADATA,
            res.UPLOAD_MODEL_RESPONSE,
            {"model": "m", "modelVersionId": "1"},
        ),
        (res.CREATE_ENDPOINT_METADATA, res.ENDPOINT, {"name": "e", "displayName": "d"}),
        (res.DEPLOY_MODEL_METADATA, res.DEPLOY_MODEL_RESPONSE, {"deployedModel": {"id": "1"}}),
        (res.UNDEPLOY_MODEL_METADATA, res.UNDEPLOY_MODEL_RESPONSE, None),
        (res.DELETE_METADATA, res.EMPTY, None),
    ],
)
def test_operations_parse_and_unpack(metadata, response_type, response):
    import google.cloud.aiplatform_v1  # noqa: F401 - registers the message types

    op = res.operation(
        "x/operations/1",
        metadata,
        res.now(),
        done=True,
        response_type=response_type,
        response=response,
    )
    pb = json_format.ParseDict(op, operations_pb2.Operation(), ignore_unknown_fields=False)
    assert pb.done and pb.response.type_url.endswith(response_type)
    failed = res.operation(
        "x/operations/2", metadata, res.now(), done=True, error=rpc_status("ABORTED", "gone")
    )
    pb = json_format.ParseDict(failed, operations_pb2.Operation(), ignore_unknown_fields=False)
    assert pb.error.code == 10


def test_filters():
    r = {"displayName": "x y", "labels": {"deploytest-run": "r1", "deploytest-managed": "true"}}
    assert filters.parse('labels.deploytest-run="r1" AND labels.deploytest-managed="true"')(r)
    assert filters.parse("labels.deploytest-run=r1 labels.deploytest-managed=true")(r)
    assert not filters.parse('labels.deploytest-run="r2"')(r)
    assert filters.parse('display_name="x y"')(r) and filters.parse("labels.deploytest-run:*")(r)
    assert filters.parse('labels.deploytest-run!="r2"')(r) and filters.parse("")(r)
    for bad in ('a="b" OR c="d"', "NOT labels.a=b", "labels.a", 'bogus="1"'):
        with pytest.raises(ApiError) as err:
            filters.parse(bad)
        assert err.value.http_code == 400 and err.value.status == "INVALID_ARGUMENT"


def test_errors_and_number_normalisation():
    err = ApiError("FAILED_PRECONDITION", "busy")
    assert err.http_code == 400
    assert err.body() == {
        "error": {"code": 400, "message": "busy", "status": "FAILED_PRECONDITION"}
    }
    assert err.rpc_status() == {"code": 9, "message": "busy"}
    assert normalize_numbers({"a": [8.0, 0.5, "8.0"], "b": True}) == {
        "a": [8, 0.5, "8.0"],
        "b": True,
    }


def test_cli_registers_with_honest_help(capsys):
    from emulator.cli import add_parser

    parser = argparse.ArgumentParser(prog="deploytest")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["emulator", "--port", "0", "--fault-deploy", "hang"])
    assert args.fault_deploy == "hang" and callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["emulator", "--help"])
    out = capsys.readouterr().out
    assert "Vertex AI" in out and "--deploy-timeout-s" in out and "--gcs-dir" in out
