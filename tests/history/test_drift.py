"""Drift of the answers: the record task compares the correctness phase's answers with the
series' last PASS run (the gate's outcome.json in the history); the gate reports it always
and fails on it only with correctness_drift=fail. The gate's correctness checks."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

import history.recorder as recorder
from components.slo_gate import slo_gate
from history.drift import drift
from history.store import OUTCOME_JSON, LocalStore, StoreError
from tests.history.synthetic import make_run

GOOD = {"requests": 100, "p95_ms": 250.0, "failure_ratio": 0.0, "rps": 20.0}
ANSWERS = {"The capital of France is": " Paris.", "2 + 2 =": " 4"}


def _record(tmp_path, monkeypatch, i, history, answers):
    monkeypatch.setattr(recorder, "model_facts", lambda *a: ("synthetic-model", "1"))
    source, metrics, _ = make_run(i, np.random.default_rng(i))
    stats = tmp_path / f"stats-{i}"
    stats.mkdir()
    metrics = {**metrics, "started_at": source.started_at, "correctness": {"answers": answers}}
    (stats / "metrics.json").write_text(json.dumps(metrics))
    params = {k: getattr(source.series, k) for k in ("machine_type", "accelerator_type")}
    params.update(
        accelerator_count=0, min_replicas=1, max_replicas=1, users=8, spawn_rate=8.0,
        duration="20s", max_new_tokens=16,
    )  # fmt: skip
    _, _, _, verdict = recorder.record_and_judge(
        stats_dir=stats, out_dir=tmp_path / f"record-{i}", history=history,
        run_id=source.run_id, pipeline_job="job", model="projects/p/locations/l/models/1",
        template="", trigger="manual", parameters=params, location="l", api_endpoint="",
        log=lambda line: None,
    )  # fmt: skip
    return json.dumps(verdict.to_dict())


def gate(verdict, history, drift_mode="warn", metrics=GOOD, **kw):
    return slo_gate.python_func(
        metrics=SimpleNamespace(metadata=metrics), max_p95_ms=500.0, max_failure_ratio=0.01,
        min_rps=10.0, regression_verdict=verdict, correctness_drift=drift_mode,
        history=history, **kw,
    )  # fmt: skip


def test_drift_compares_with_the_last_pass_run_and_fails_only_when_asked(
    tmp_path, monkeypatch, capsys
):
    history = str(tmp_path / "history")
    first = _record(tmp_path, monkeypatch, 0, history, ANSWERS)
    assert json.loads(first)["correctness_drift"]["state"] == "NO BASELINE"
    assert gate(first, history) == "PASS"
    entry = json.loads(first)["history_entry"]
    saved = json.loads((tmp_path / "history" / entry / OUTCOME_JSON).read_text())
    assert saved == {"outcome": "PASS", "reasons": ""}

    # a failing run is not a baseline: its outcome is FAIL
    changed = {**ANSWERS, "2 + 2 =": " 5"}
    second = _record(tmp_path, monkeypatch, 1, history, changed)
    d = json.loads(second)["correctness_drift"]
    assert d["state"] == "DRIFT" and d["baseline_run"] == "synthetic-0000"
    assert (d["compared"], d["changed"]) == (2, 1)
    assert d["prompts"] == [{"prompt": "2 + 2 =", "before": " 4", "now": " 5"}]
    with pytest.raises(RuntimeError, match="correctness drift: DRIFT: 1 of 2 answers differ"):
        gate(second, history, drift_mode="fail")
    listing = LocalStore(history).list()
    assert [e.outcome for e in listing.entries] == ["PASS", "FAIL"]

    # the next run still compares with the last PASS (run 0), not the failed run 1
    third = _record(tmp_path, monkeypatch, 2, history, ANSWERS)
    d = json.loads(third)["correctness_drift"]
    assert d["state"] == "SAME" and d["baseline_run"] == "synthetic-0000"
    capsys.readouterr()
    assert gate(third, history, drift_mode="warn") == "PASS"
    assert "correctness drift: SAME: 0 of 2 answers differ" in capsys.readouterr().out

    # warn reports drift without failing; the outcome is written once
    fourth = _record(tmp_path, monkeypatch, 3, history, changed)
    assert gate(fourth, history, drift_mode="warn") == "PASS"
    assert "WARNING: the answers drifted" in capsys.readouterr().out
    with pytest.raises(StoreError, match="written already"):
        LocalStore(history).write_outcome(json.loads(fourth)["history_entry"], "FAIL")


def test_a_run_without_answers_has_no_drift_to_judge():
    me = SimpleNamespace(name="x", metrics={"correctness": {}})
    assert drift(me, [])["state"] == "NO ANSWERS"


def test_an_outcome_file_that_is_not_one_skips_the_entry(tmp_path, monkeypatch):
    history = str(tmp_path / "history")
    verdict = _record(tmp_path, monkeypatch, 0, history, ANSWERS)
    entry = json.loads(verdict)["history_entry"]
    (tmp_path / "history" / entry / OUTCOME_JSON).write_text('{"outcome": "MAYBE"}')
    listing = LocalStore(history).list()
    assert listing.entries == [] and "outcome.json must name an outcome" in listing.problems[0]


@pytest.mark.parametrize(
    "measured, kw, missed",
    [
        ({"parity_ratio": 0.5}, {}, "parity_ratio 0.5 (required >= 1)"),
        ({"parity_ratio": 0.75}, {"min_parity": 0.75}, None),
        ({"expect_pass_ratio": 0.5}, {"min_expect_pass": 0.6}, "expect_pass_ratio 0.5"),
        ({}, {"min_parity": 1.0}, None),  # not measured (e.g. TGI): not judged
    ],
)
def test_the_gate_checks_the_correctness_ratios_it_was_given(measured, kw, missed):
    if missed:
        with pytest.raises(RuntimeError, match=re.escape(f"SLO missed: {missed}")):
            gate("", "", metrics={**GOOD, **measured}, **kw)
    else:
        assert gate("", "", metrics={**GOOD, **measured}, **kw) == "PASS"
