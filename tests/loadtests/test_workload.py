"""Workload specs (loadtests/workload.py): checked before anything runs, naming the field or
line; prompts of exact lengths in the model's own tokenizer, the same from the same seed."""

from __future__ import annotations

import json
import statistics

import pytest

from loadtests.tokens import load_counter
from loadtests.workload import (
    WORKLOADS_DIR,
    WorkloadError,
    build_requests,
    check_api,
    check_context,
    from_flags,
    load_workload,
    parse_workload,
    read_dataset,
)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from serving.demo_model import build_demo_model

    return str(build_demo_model(tmp_path_factory.mktemp("workload") / "tiny", size="tiny"))


def test_synthetic_prompts_have_exactly_the_tokens_asked_for(tokenizer):
    workload = parse_workload({"input_tokens": 64, "output_tokens": 16, "requests": 40})
    built = build_requests(workload, tokenizer, context_tokens=256)
    count = load_counter(tokenizer)
    assert len(built.requests) == 40
    assert {count(r.prompt) for r in built.requests} == {64}
    assert {r.input_tokens for r in built.requests} == {64}
    assert {r.turns[0].max_tokens for r in built.requests} == {16}
    assert len({r.prompt for r in built.requests}) == 40  # distinct prompts
    # the same seed builds the same requests (every Locust process sends one workload)
    again = build_requests(workload, tokenizer, context_tokens=256)
    assert [r.prompt for r in again.requests] == [r.prompt for r in built.requests]
    other = build_requests(parse_workload({"input_tokens": 64, "seed": 1}), tokenizer)
    assert other.requests[0].prompt != built.requests[0].prompt


def test_distributions_stay_within_bounds_and_are_exact(tokenizer):
    spec = {
        "input_tokens": {"distribution": "normal", "mean": 80, "stddev": 30, "min": 40, "max": 120},
        "output_tokens": {"distribution": "uniform", "min": 4, "max": 12},
        "requests": 200,
    }
    built = build_requests(parse_workload(spec), tokenizer, context_tokens=256)
    count = load_counter(tokenizer)
    inputs = [r.input_tokens for r in built.requests]
    outputs = [r.turns[0].max_tokens for r in built.requests]
    assert all(count(r.prompt) == r.input_tokens for r in built.requests)
    assert min(inputs) >= 40 and max(inputs) <= 120 and 70 < statistics.mean(inputs) < 90
    assert min(outputs) >= 4 and max(outputs) <= 12 and len(set(outputs)) > 5


def test_a_shared_prefix_goes_before_a_share_of_the_prompts(tokenizer):
    spec = {"input_tokens": 32, "requests": 200, "shared_prefix": {"tokens": 24, "share": 0.5}}
    built = build_requests(parse_workload(spec), tokenizer)
    count = load_counter(tokenizer)
    with_prefix = [r for r in built.requests if r.prefix]
    assert 70 < len(with_prefix) < 130
    assert len({r.prefix for r in with_prefix}) == 1  # one prefix, shared
    assert {count(r.prompt) for r in with_prefix} == {56}  # the prefix's tokens add on top
    assert {r.input_tokens for r in with_prefix} == {56}


def test_sharegpt_and_jsonl_datasets(tokenizer, tmp_path):
    workload = load_workload("sharegpt-mini")
    assert workload.dataset.path == str(WORKLOADS_DIR / "sharegpt-mini.json")
    built = build_requests(workload, tokenizer, context_tokens=256)
    count = load_counter(tokenizer)
    data = json.loads((WORKLOADS_DIR / "sharegpt-mini.json").read_text())
    firsts = {c["conversations"][0]["value"]: c["conversations"][1]["value"] for c in data}
    assert len(built.requests) == len(data)
    for r in built.requests:  # the first human turn; the reply's length, in model tokens
        assert r.input_tokens == count(r.prompt)
        assert r.turns[0].max_tokens == count(firsts[r.prompt])
    lines = tmp_path / "p.jsonl"
    lines.write_text('{"prompt": "hello there", "output_tokens": 5}\n\n{"prompt": "bye"}\n')
    spec = {"dataset": {"path": str(lines), "format": "jsonl"}}
    built = build_requests(parse_workload(spec), tokenizer, default_output=9)
    assert sorted(r.turns[0].max_tokens for r in built.requests) == [5, 9]
    # a model too small for a dataset's prompts skips them, and says how many
    built = build_requests(workload, tokenizer, context_tokens=100)
    assert built.skipped == 7 and len(built.requests) == 9 and "7 dataset" in built.notes[0]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"input_tokens": 8, "colour": "red"}, "workload: unknown key 'colour'"),
        ({"input_tokens": {"distribution": "uniform", "min": 9, "max": 3}}, "min 9 is greater"),
        ({"input_tokens": {"distribution": "normal", "min": 1, "max": 9}}, "needs mean and stddev"),
        ({"input_tokens": {"distribution": "zipf", "min": 1, "max": 9}}, "distribution must be"),
        ({"input_tokens": 0}, "input_tokens must be within"),
        ({"input_tokens": "64"}, "input_tokens must be an integer"),
        ({"output_tokens": 16}, "input_tokens is missing"),
        ({"input_tokens": "dataset"}, '"dataset" needs a dataset'),
        ({"input_tokens": 8, "sessions": {"turns": 0}}, "sessions.turns must be within"),
        ({"input_tokens": 8, "shared_prefix": {"tokens": 4, "share": 2}}, "share must be within"),
        ({"dataset": {"path": "x.json", "format": "csv"}}, "dataset.format must be one of"),
        ({"input_tokens": 8, "exact_output": "yes"}, "exact_output must be true or false"),
    ],
)
def test_bad_specs_name_the_field(spec, message):
    with pytest.raises(WorkloadError, match=message.replace("(", r"\(")):
        parse_workload(spec)


def test_impossible_lengths_and_apis_are_refused():
    workload = parse_workload({"input_tokens": 200, "output_tokens": 100})
    with pytest.raises(WorkloadError, match="up to 300 tokens .* context of 256"):
        check_context(workload, 256)
    check_context(workload, 1024)
    sessions = parse_workload({"input_tokens": 8, "sessions": {"turns": 3}})
    with pytest.raises(WorkloadError, match="need --api openai-chat"):
        check_api(sessions, "deploytest")
    check_api(sessions, "openai-chat")


@pytest.mark.parametrize(
    "text, message",
    [
        ('[{"conversations": [{"from": "human"}]}]', 'item 0: a turn lacks a "value"'),
        ('{"conversations": []}', "a JSON list of conversations"),
        ("[{", "not JSON"),
        ('[{"conversations": [{"from": "gpt", "value": "hi"}]}]', "holds no usable prompt"),
    ],
)
def test_a_sharegpt_file_that_cannot_drive_a_run(tmp_path, text, message):
    path = tmp_path / "d.json"
    path.write_text(text)
    with pytest.raises(WorkloadError, match=message):
        read_dataset(path, "sharegpt")


def test_a_bad_jsonl_line_is_named(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "a"}\n{"prompt": 3}\n')
    with pytest.raises(WorkloadError, match='d.jsonl line 2: needs a "prompt" string'):
        read_dataset(path, "jsonl")


def test_files_names_flags_and_identity(tmp_path):
    spec = tmp_path / "w.yaml"
    spec.write_text("input_tokens: 64\noutput_tokens: 16\nname: mine\n")
    workload = load_workload(str(spec))
    flags = from_flags(None, 64, 16)
    # the name is a label: the same lengths are the same workload
    assert workload.identity() == flags.identity()
    assert from_flags(workload, 32, None).identity() != workload.identity()
    assert from_flags(workload, None, None) is workload
    with pytest.raises(WorkloadError, match="no workload of that name .*sharegpt-mini"):
        load_workload("no-such-workload")
    with pytest.raises(WorkloadError, match="not YAML or JSON"):
        load_workload("{input_tokens: [")
    every = [load_workload(str(p)) for p in sorted(WORKLOADS_DIR.glob("*.yaml"))]
    assert len({w.identity() for w in every}) == len(every) >= 3


def test_a_run_far_from_the_spec_says_so(tokenizer):
    from loadtests.workload import mean_output, output_warning

    assert output_warning(16, {"output_tokens": {"p50": 15}}) is None
    assert "p50 9 is 44% below the 16 asked" in output_warning(16, {"output_tokens": {"p50": 9}})
    assert output_warning(None, {"output_tokens": {"p50": 9}}) is None
    spec = {"input_tokens": 8, "output_tokens": {"distribution": "uniform", "min": 2, "max": 4}}
    built = build_requests(parse_workload({**spec, "requests": 400}), tokenizer)
    assert 2.8 < mean_output(built.requests) < 3.2
