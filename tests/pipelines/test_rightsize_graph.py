"""The right-sizing graph: the single run's create, deploy, load test and record fan out over
the `candidates` parameter, one branch at a time offline, and the recommendation runs after
the fan-out whatever each branch did; candidates are checked before anything is created."""

import json

import pytest
import yaml

from pipelines.candidates import check_candidates, parse_spec, read_file
from pipelines.compile import compile_pipeline, is_rightsize_spec
from pipelines.pipeline import DEFAULTS, DEPLOY_TASK, EXIT_HANDLER_NAME
from pipelines.validation import InputError, pipeline_parameters


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    out = tmp_path_factory.mktemp("rightsize") / "pipeline.yaml"
    return yaml.safe_load(compile_pipeline(out, rightsize=True, parallelism=3).read_text())


def _component(spec, task):
    return spec["components"][task["componentRef"]["name"]]["dag"]["tasks"]


def test_the_branches_fan_out_inside_the_exit_handler_and_the_recommendation_follows(spec):
    root = spec["root"]["dag"]["tasks"]
    handler = next(t for t in root.values() if t["taskInfo"]["name"] == EXIT_HANDLER_NAME)
    inner = _component(spec, handler)
    assert set(inner) == {"reference-answers", "for-loop-2", "recommend"}
    loop = inner["for-loop-2"]
    assert loop["parameterIterator"]["items"] == {"inputParameter": "pipelinechannel--candidates"}
    assert loop["iteratorPolicy"] == {"parallelismLimit": 3}
    branch = _component(spec, loop)
    assert set(branch) == {
        "candidate-labels", "endpoint-create", DEPLOY_TASK, "locust-load-test", "record-run",
    }  # fmt: skip
    # the recommendation runs when the fan-out ended, failed branches included
    assert inner["recommend"]["dependentTasks"] == ["for-loop-2"]
    assert inner["recommend"]["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    # the clean-up is still the exit task
    assert root["cleanup-endpoints"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert is_rightsize_spec(spec)


def test_each_branch_deploys_on_its_candidate_and_labels_its_endpoint(spec):
    root = spec["root"]["dag"]["tasks"]
    handler = next(t for t in root.values() if t["taskInfo"]["name"] == EXIT_HANDLER_NAME)
    branch = _component(spec, _component(spec, handler)["for-loop-2"])
    params = branch[DEPLOY_TASK]["inputs"]["parameters"]
    item = "pipelinechannel--candidates-loop-item"
    for name, field in (
        ("dedicated_resources_machine_type", "machine_type"),
        ("dedicated_resources_accelerator_type", "accelerator_type"),
        ("dedicated_resources_accelerator_count", "accelerator_count"),
        ("dedicated_resources_min_replica_count", "replicas"),
        ("dedicated_resources_max_replica_count", "replicas"),
    ):
        assert params[name]["componentInputParameter"] == item, name
        assert params[name]["parameterExpressionSelector"] == f'parseJson(string_value)["{field}"]'
    labels = branch["endpoint-create"]["inputs"]["parameters"]["labels"]
    assert labels["taskOutputParameter"]["producerTask"] == "candidate-labels"
    record = branch["record-run"]["inputs"]["parameters"]
    assert record["candidate"]["componentInputParameter"] == item


def test_the_single_run_graph_is_not_the_right_sizing_one(tmp_path):
    spec = yaml.safe_load(compile_pipeline(tmp_path / "p.yaml").read_text())
    assert not is_rightsize_spec(spec)
    with pytest.raises(ValueError, match="parallelism"):
        compile_pipeline(tmp_path / "q.yaml", rightsize=True, parallelism=0)


def test_candidate_specs_parse_into_the_four_keys():
    assert parse_spec("n1-standard-8") == {
        "machine_type": "n1-standard-8", "accelerator_type": "", "accelerator_count": 0,
        "replicas": 1,
    }  # fmt: skip
    assert parse_spec("g2-standard-8,NVIDIA_L4:1,replicas=2") == {
        "machine_type": "g2-standard-8", "accelerator_type": "NVIDIA_L4", "accelerator_count": 1,
        "replicas": 2,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("N1-standard-8", "invalid machine type"),
        ("n1-standard-8,T4", "neither ACCELERATOR:COUNT"),
        ("n1-standard-8,NVIDIA_TESLA_T4:0", "together"),
        ("n1-standard-8,NVIDIA_TESLA_T4:99", "accelerator count"),
        ("n1-standard-8,replicas=0", "replicas"),
        ("n1-standard-8,replicas=1,replicas=2", "twice"),
        ("n1-standard-8,NVIDIA_TESLA_T4:1,NVIDIA_L4:1", "two accelerators"),
    ],
)
def test_bad_candidate_specs_are_refused_naming_the_problem(text, why):
    with pytest.raises(InputError, match=why):
        parse_spec(text)


def test_a_candidates_file_is_a_json_list_of_objects(tmp_path):
    good = tmp_path / "c.json"
    good.write_text(
        json.dumps(
            [{"machine_type": "n1-standard-4"}, {"machine_type": "e2-standard-8", "replicas": 2}]
        )
    )
    assert [c["replicas"] for c in read_file(good)] == [1, 2]
    for body, why in (
        ("{}", "a JSON list"),
        ('[{"machine_type": "n1-standard-4", "gpu": 1}]', "unknown key"),
        ('[{"machine_type": "n1-standard-4", "replicas": "2"}]', "integer"),
        ("not json", "not JSON"),
    ):
        bad = tmp_path / "bad.json"
        bad.write_text(body)
        with pytest.raises(InputError, match=why):
            read_file(bad)
    with pytest.raises(InputError, match="not a file"):
        read_file(tmp_path / "missing.json")


def test_the_candidate_list_is_two_or_more_distinct_ones():
    one = {"machine_type": "n1-standard-4"}
    assert check_candidates([]) == []
    with pytest.raises(InputError, match="one candidate is a plain run"):
        check_candidates([one])
    with pytest.raises(InputError, match="given twice: n1-standard-4"):
        check_candidates([one, dict(one)])
    with pytest.raises(InputError, match="at most 16"):
        check_candidates([{"machine_type": f"n1-standard-{i}"} for i in range(17)])


def test_right_sizing_parameters_need_a_sweep_and_a_history():
    two = [{"machine_type": "n1-standard-2"}, {"machine_type": "n1-standard-8"}]
    sweep = {"load_shape": "sweep", "candidates": two, "history": "/tmp/h"}
    pipeline_parameters(sweep)  # accepted
    with pytest.raises(InputError, match="--load-shape sweep"):
        pipeline_parameters({**sweep, "load_shape": "users"})
    with pytest.raises(InputError, match="--history"):
        pipeline_parameters({**sweep, "history": ""})
    with pytest.raises(InputError, match="two or more --candidate"):
        pipeline_parameters({"required_rps": 5.0})
    with pytest.raises(InputError, match="required requests/s"):
        pipeline_parameters({**sweep, "required_rps": -1.0})
    assert DEFAULTS["candidates"] == [] and DEFAULTS["required_rps"] == 0.0
