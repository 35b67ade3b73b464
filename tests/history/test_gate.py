"""The gate applies --regression to the record task's verdict; the record task's body records
the run in the history before any verdict; bad --regression/--trigger/--history exit 2."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

import history.recorder as recorder
from components.slo_gate import slo_gate
from deploytest.cli import main
from history.store import LocalStore
from tests.history.synthetic import make_run

GOOD = {"requests": 100, "p95_ms": 250.0, "failure_ratio": 0.0, "rps": 20.0}
REGRESSED = json.dumps({"overall": "REGRESSION", "gate_failed": True})
UNCHANGED = json.dumps({"overall": "NO CHANGE", "gate_failed": False})


def gate(metrics=GOOD, verdict=REGRESSED, regression="", trigger="manual"):
    return slo_gate.python_func(
        metrics=SimpleNamespace(metadata=metrics),
        max_p95_ms=500.0,
        max_failure_ratio=0.01,
        min_rps=10.0,
        regression_verdict=verdict,
        regression=regression,
        trigger=trigger,
    )


@pytest.mark.parametrize(
    "regression, trigger, fails",
    [
        ("fail", "manual", True),
        ("warn", "schedule", False),
        ("off", "schedule", False),
        ("", "schedule", True),  # scheduled runs fail by default
        ("", "manual", False),  # manual runs warn by default
        ("", "merge", False),
    ],
)
def test_regression_mode(regression, trigger, fails, capsys):
    if fails:
        with pytest.raises(RuntimeError, match="regression against the history"):
            gate(regression=regression, trigger=trigger)
    else:
        assert gate(regression=regression, trigger=trigger) == "PASS"
    out = capsys.readouterr().out
    assert "regression verdict: REGRESSION" in out
    assert ("WARNING: regression" in out) == (not fails and regression != "off")


def test_no_regression_and_no_verdict_pass():
    assert gate(verdict=UNCHANGED, regression="fail") == "PASS"
    assert gate(verdict="", regression="fail") == "PASS"


def test_slo_miss_and_regression_are_both_named():
    with pytest.raises(RuntimeError, match=r"SLO missed: p95_ms .*; regression against"):
        gate(metrics={**GOOD, "p95_ms": 900.0}, regression="fail")


def _stats_dir(tmp_path, i, slowdown=1.0):
    record, metrics, _ = make_run(i, np.random.default_rng(i), slowdown=slowdown)
    stats = tmp_path / f"stats-{i}"
    stats.mkdir()
    (stats / "metrics.json").write_text(json.dumps({**metrics, "started_at": record.started_at}))
    return stats, record


def _record(tmp_path, monkeypatch, i, history, slowdown=1.0):
    # The Model Registry lookup is exercised end to end (tests/e2e/test_history_run.py).
    monkeypatch.setattr(recorder, "model_facts", lambda *a: ("synthetic-model", "1"))
    stats, source = _stats_dir(tmp_path, i, slowdown)
    params = {k: getattr(source.series, k) for k in ("machine_type", "accelerator_type")}
    params.update(
        accelerator_count=0, min_replicas=1, max_replicas=1, users=8, spawn_rate=8.0,
        duration="20s", max_new_tokens=16,
    )  # fmt: skip
    return recorder.record_and_judge(
        stats_dir=stats,
        out_dir=tmp_path / f"record-{i}",
        history=history,
        run_id=source.run_id,
        pipeline_job="job",
        model="projects/p/locations/us-central1/models/1",
        template="git-abc",
        trigger="schedule",
        parameters=params,
        location="us-central1",
        api_endpoint="",
        log=lambda line: None,
    )


def test_the_record_is_in_the_history_before_the_verdict(tmp_path, monkeypatch):
    history = str(tmp_path / "history")
    for i in range(8):
        _record(tmp_path, monkeypatch, i, history)
    record, _, series, verdict = _record(tmp_path, monkeypatch, 8, history, slowdown=1.3)
    assert verdict.gate_failed and verdict.history_runs == 8
    assert [e.record.run_id for e in series][-1] == record.run_id and len(series) == 9
    listing = LocalStore(history).list()
    assert len(listing.entries) == 9  # the regressed run is recorded too
    saved = json.loads((tmp_path / "record-8" / "verdict.json").read_text())
    assert saved["overall"] == "REGRESSION" and saved["gate_failed"] is True
    assert recorder.load_verdict(tmp_path / "record-8" / "verdict.json").overall == "REGRESSION"
    assert json.loads((tmp_path / "record-8" / "run.json").read_text())["template"] == "git-abc"


def test_without_a_history_the_run_is_recorded_in_its_folder_only(tmp_path, monkeypatch):
    record, _, series, verdict = _record(tmp_path, monkeypatch, 0, "")
    assert verdict is None and len(series) == 1
    assert (tmp_path / "record-0" / "run.json").is_file()
    assert not (tmp_path / "record-0" / "verdict.json").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--regression", "loud"], "regression must be one of fail, warn, off"),
        (["--trigger", "cron"], "trigger must be one of"),
        (["--history", "s3://bucket/h"], "invalid history URI"),
        (["--template", "x" * 200], "at most 128 printable characters"),
    ],
)
def test_run_refuses_bad_history_options_before_anything_is_created(
    tmp_path, capsys, args, message
):
    code = main(["run", "--output-dir", str(tmp_path / "runs"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert not (tmp_path / "runs").exists()
