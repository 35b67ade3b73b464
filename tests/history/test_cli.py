"""`deploytest verdict` and `deploytest history` on synthetic histories written to a folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deploytest.cli import main
from history.records import METRICS_JSON, RUN_JSON
from history.store import LocalStore
from tests.history.synthetic import make_run


def write_history(root, n, rng, step_at=None):
    store = LocalStore(root)
    for i in range(n):
        slow = 1.25 if step_at is not None and i >= step_at else 1.0
        store.append(*make_run(i, rng, slowdown=slow))
    return store


def write_candidate(folder, i, rng, slowdown=1.0):
    record, metrics, times = make_run(i, rng, slowdown=slowdown)
    folder.mkdir()
    (folder / RUN_JSON).write_text(record.to_json())
    (folder / METRICS_JSON).write_text(json.dumps(metrics))
    (folder / "response_times.json").write_text(json.dumps({f"{k:g}": v for k, v in times.items()}))
    return folder


@pytest.fixture
def stable(tmp_path):
    return write_history(tmp_path / "history", 12, np.random.default_rng(1))


def test_candidate_25_percent_slower_in_p95_is_a_regression(stable, tmp_path, capsys):
    candidate = write_candidate(tmp_path / "cand", 12, np.random.default_rng(2), slowdown=1.25)
    code = main(["verdict", "--history", str(stable.root), "--candidate", str(candidate)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "regression verdict: REGRESSION" in out
    p95 = next(line for line in out.splitlines() if line.startswith("p95 latency"))
    assert "REGRESSION" in p95 and "%" in p95


def test_unchanged_candidate_is_no_change(stable, tmp_path, capsys):
    candidate = write_candidate(tmp_path / "cand", 12, np.random.default_rng(3))
    code = main(["verdict", "--history", str(stable.root), "--candidate", str(candidate), "--json"])
    verdict = json.loads(capsys.readouterr().out)
    assert code == 0
    assert verdict["overall"] == "NO CHANGE"
    assert verdict["history_runs"] == 12
    p95 = next(m for m in verdict["metrics"] if m["metric"] == "p95_ms")
    assert p95["word"] == "NO CHANGE" and p95["pvalue"] is not None and p95["baseline_runs"] == 12


def test_history_lists_the_step_and_writes_a_chart(tmp_path, capsys):
    store = write_history(tmp_path / "history", 20, np.random.default_rng(4), step_at=10)
    code = main(["history", "--history", str(store.root), "--chart-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    steps = [line for line in out.splitlines() if "change point: p95 latency" in line]
    assert steps and "run #11 (synthetic-0010)" in steps[0], out
    charts = list(tmp_path.glob("trend-*.svg"))
    assert len(charts) == 1 and "<svg" in charts[0].read_text()


def test_a_candidate_with_short_history_is_not_enough_history(tmp_path, capsys):
    store = write_history(tmp_path / "history", 2, np.random.default_rng(5))
    candidate = write_candidate(tmp_path / "cand", 2, np.random.default_rng(6), slowdown=2.0)
    code = main(["verdict", "--history", str(store.root), "--candidate", str(candidate)])
    assert code == 0
    assert "regression verdict: NOT ENOUGH HISTORY" in capsys.readouterr().out


def test_an_unreadable_record_is_reported_and_skipped(stable, tmp_path, capsys):
    bad = stable.root / "20260101T000000Z-broken"
    bad.mkdir()
    (bad / RUN_JSON).write_text("{not json")
    (bad / METRICS_JSON).write_text("{}")
    candidate = write_candidate(tmp_path / "cand", 12, np.random.default_rng(3))
    code = main(["verdict", "--history", str(stable.root), "--candidate", str(candidate)])
    captured = capsys.readouterr()
    assert code == 0
    assert "skipped history entry 20260101T000000Z-broken" in captured.err
    assert "regression verdict: NO CHANGE" in captured.out


@pytest.mark.parametrize(
    "history, candidate, message",
    [
        ("gs://", "cand", "invalid history URI"),
        ("s3://bucket/x", "cand", "invalid history URI"),
        ("HISTORY", "missing", "is not a folder"),
        ("HISTORY", "empty", "holds no run.json"),
    ],
)
def test_bad_input_exits_2_with_one_line(stable, tmp_path, capsys, history, candidate, message):
    write_candidate(tmp_path / "cand", 12, np.random.default_rng(3))
    (tmp_path / "empty").mkdir()
    history = str(stable.root) if history == "HISTORY" else history
    code = main(["verdict", "--history", history, "--candidate", str(tmp_path / candidate)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1


def test_history_of_an_unknown_series_exits_2(stable, tmp_path, capsys):
    code = main(
        ["history", "--history", str(stable.root), "--series", "nope", "--chart-dir", str(tmp_path)]
    )
    assert code == 2
    assert "no series matches 'nope'" in capsys.readouterr().err
    assert not list(tmp_path.glob("trend-*.svg"))


def test_a_candidate_from_another_series_is_not_judged(stable, tmp_path, capsys):
    candidate = write_candidate(tmp_path / "cand", 12, np.random.default_rng(3), slowdown=2.0)
    data = json.loads((candidate / RUN_JSON).read_text())
    data["series"]["users"] = 64
    (candidate / RUN_JSON).write_text(json.dumps(data))
    code = main(["verdict", "--history", str(stable.root), "--candidate", str(candidate)])
    captured = capsys.readouterr()
    assert code == 0
    assert "regression verdict: NOT ENOUGH HISTORY" in captured.out
    assert "the history holds 12 run(s), none earlier in series" in captured.err
