"""Parity with the artifact, against our real model server: the right weights match
exactly, other weights (the emulator's wrong-weights fault) fail; and `deploytest loadtest`
gates on it and on the team's expectations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from correctness.phase import Plan, run_phase
from correctness.reference import compare
from emulator.faults import write_other_weights
from tests.serving.conftest import ServerProcess, free_port, serving_cmd

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "correctness" / "examples"


def test_compare_counts_the_common_prefix_and_matches():
    assert compare([1, 2, 3, 4], [1, 2, 9, 4], 4).to_json() == {
        "common_prefix": 2, "match_ratio": 0.75, "matched": False,
    }  # fmt: skip
    assert compare([1, 2], [1, 2], 4).matched  # both ended early at the same place
    assert compare([1, 2, 3], [1, 2, 3, 7], 3).matched  # only the first K count
    assert not compare([1, 2], [1, 2, 3], 4).matched


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Our server on the demo model, and on a copy with other weights."""
    from serving.demo_model import build_demo_model

    tmp = tmp_path_factory.mktemp("parity")
    model = build_demo_model(tmp / "model", size="tiny")
    other = write_other_weights(model, tmp / "other")
    started = {}
    for name, folder in (("right", model), ("wrong", other)):
        port = free_port()
        started[name] = ServerProcess(serving_cmd(folder, port), port)
    try:
        for server in started.values():
            server.wait_ready()
        yield model, {name: f"http://127.0.0.1:{s.port}" for name, s in started.items()}
    finally:
        for server in started.values():
            server.stop()


def test_our_server_matches_its_artifact_and_other_weights_do_not(servers, tmp_path):
    model, urls = servers
    plan = Plan(reference_model=str(model))
    right = run_phase(urls["right"] + "/predict", "deploytest", "none", plan, tmp_path / "r")
    wrong = run_phase(urls["wrong"] + "/predict", "deploytest", "none", plan, tmp_path / "w")
    assert right["parity_ratio"] == 1.0
    assert wrong["parity_ratio"] < 0.5
    rows = json.loads((tmp_path / "w" / "correctness.json").read_text())["parity"]["prompts"]
    assert len(rows) == right["correctness"]["parity_prompts"] == 8
    assert all(r["answer"] and r["reference"] for r in rows)  # real answers were compared


def _loadtest(url: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "deploytest", "loadtest", "--url", url, "--predict-path",
        "/predict", "-o", str(out), "--duration", "2s", "--users", "2", *extra,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=180)


def test_loadtest_fails_on_other_weights_and_on_expectations(servers, tmp_path):
    model, urls = servers
    done = _loadtest(
        urls["wrong"], tmp_path / "w", "--reference-model", str(model),
        "--expect", str(EXAMPLES / "demo-fail.jsonl"),
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "parity_ratio" in done.stdout and "expect_pass_ratio" in done.stdout
    result = json.loads((tmp_path / "w" / "correctness.json").read_text())
    assert result["expectations"]["passed"] == 0
    metrics = json.loads((tmp_path / "w" / "metrics.json").read_text())
    assert metrics["requests"] > 0  # the load ran; the phase's 10 requests are not in it


def test_loadtest_passes_on_the_right_weights_and_met_expectations(servers, tmp_path):
    model, urls = servers
    done = _loadtest(
        urls["right"], tmp_path / "r", "--reference-model", str(model),
        "--expect", str(EXAMPLES / "demo-pass.jsonl"),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "r" / "correctness.json").read_text())
    assert result["parity"]["ratio"] == 1.0 and result["expectations"]["ratio"] == 1.0


def test_bad_correctness_input_is_refused_before_anything_is_sent(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "contains": "x"}\n{"prompt": "p", "regexp": "x"}\n')
    url = "http://127.0.0.1:9"  # nothing listens: a request would fail, not exit 2
    done = _loadtest(url, tmp_path / "o", "--expect", str(bad))
    assert done.returncode == 2 and f"{bad} line 2: unknown key(s) ['regexp']" in done.stderr
    done = _loadtest(url, tmp_path / "o", "--reference-model", str(tmp_path))
    assert done.returncode == 2 and "not a transformers model folder" in done.stderr
    assert not (tmp_path / "o").exists()


def test_the_pipeline_tasks_reference_answers_and_phase_from_a_saved_folder(servers, tmp_path):
    """The reference task saves the answers (and a cache entry); the load-test task's phase
    compares with them through `tokenizers` alone: the right weights match, other weights
    do not. The second reference task reads the cache."""
    from components.runtime.correctness import reference_answers, run_correctness

    model, urls = servers
    cache, lines = tmp_path / "cache", []
    kw = dict(
        model="", location="us-central1", api_endpoint="", api="deploytest",
        reference_model=str(model), expectations=str(EXAMPLES / "demo-pass.jsonl"), tokens=16,
        reference_max_mb=2000, cache=str(cache), log=lines.append,
    )  # fmt: skip
    first = reference_answers(out_dir=tmp_path / "ref1", **kw)
    assert first.startswith("8 reference answers of ") and len(list(cache.iterdir())) == 1
    second = reference_answers(out_dir=tmp_path / "ref2", **kw)
    assert "from the cache" in second
    saved = [json.loads((tmp_path / d / "reference.json").read_text()) for d in ("ref1", "ref2")]
    assert saved[0] == saved[1] and len(saved[0]["answers"]) == 8
    assert (tmp_path / "ref2" / "tokenizer.json").is_file()
    for name, ratio in (("right", 1.0), ("wrong", 0.0)):
        fields = run_correctness(
            url=urls[name] + "/predict", api="deploytest", auth="none",
            reference_dir=str(tmp_path / "ref2"), expectations="", tokens=16,
            out_dir=tmp_path / name, log=lines.append,
        )  # fmt: skip
        assert fields["parity_ratio"] == ratio, lines


def test_the_reference_task_stops_the_run_on_what_cannot_be_used(tmp_path):
    from components.runtime.correctness import reference_answers
    from correctness.expectations import ExpectationError
    from correctness.files import InputError

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "gpt2"}')  # no weights, no tokenizer
    kw = dict(model="", location="l", api_endpoint="", api="deploytest", tokens=4,
              reference_max_mb=2000, log=lambda line: None)  # fmt: skip
    with pytest.raises(InputError, match="cannot be loaded"):
        reference_answers(reference_model=str(broken), expectations="", out_dir=tmp_path / "a",
                          **kw)  # fmt: skip
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "contains": 3}\n')
    with pytest.raises(ExpectationError, match="line 1"):
        reference_answers(reference_model="none", expectations=str(bad), out_dir=tmp_path / "b",
                          **kw)  # fmt: skip
    # too big for this machine: not measured, said so, and not an error
    kw["reference_max_mb"] = 1e-6
    line = reference_answers(reference_model=str(broken), expectations="",
                             out_dir=tmp_path / "c", **kw)  # fmt: skip
    assert line.startswith("parity not measured: reference model") and "limit" in line
    assert "skipped" in json.loads((tmp_path / "c" / "skipped.json").read_text())


def test_a_chat_api_against_a_model_without_a_chat_template_is_not_judged(servers, tmp_path):
    from correctness.phase import prepare_reference

    model, _ = servers
    got = prepare_reference(Plan(reference_model=str(model)), "openai-chat", tmp_path)
    assert isinstance(got, str) and got.startswith("the model has no chat template")
