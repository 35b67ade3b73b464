"""Request bodies in either proto3 JSON spelling (GCPC's launchers send proto names)."""

from emulator.protojson import camel_case_fields


def test_proto_names_become_json_names_but_map_keys_stay():
    body = {
        "display_name": "e",
        "labels": {"cost_center": "ml", "deploytest-run": "r1"},
        "deployed_model": {
            "dedicated_resources": {"machine_spec": {"machine_type": "n1"}, "min_replica_count": 1}
        },
        "traffic_split": {"0": 100},
        "instances": [{"max_new_tokens": 3}],
    }
    assert camel_case_fields(body) == {
        "displayName": "e",
        "labels": {"cost_center": "ml", "deploytest-run": "r1"},
        "deployedModel": {
            "dedicatedResources": {"machineSpec": {"machineType": "n1"}, "minReplicaCount": 1}
        },
        "trafficSplit": {"0": 100},
        "instances": [{"max_new_tokens": 3}],
    }
    assert camel_case_fields({"displayName": "x"}) == {"displayName": "x"}
