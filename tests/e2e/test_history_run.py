"""End-to-end: two `deploytest run`s in a row write two records to the history, and the second
run's report shows both runs on its trend charts (rendered in headless Chromium); a third run
on the shipped ShareGPT workload falls in a series of its own, and its report shows the
lengths that the dataset's prompts achieved."""

import json
import os
import re
import subprocess
import sys

import pytest

from history.store import LocalStore
from tests.processes import processes_mentioning

pytestmark = pytest.mark.slow

FAST = ["--duration", "4s", "--users", "4", "--spawn-rate", "4"]


def deploytest_run(tmp_path, cache_dir, run_id, *more):
    cmd = [
        sys.executable, "-m", "deploytest", "run", "--run-id", run_id,
        "--output-dir", str(tmp_path / "runs"), "--cache-dir", str(cache_dir), *FAST, *more,
    ]  # fmt: skip
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return done.returncode, done.stdout + done.stderr


def test_two_runs_write_two_records_and_the_second_report_shows_both(tmp_path, cache_dir):
    outputs = []
    for run_id in ("e2e-history-1", "e2e-history-2"):
        code, out = deploytest_run(tmp_path, cache_dir, run_id)
        assert code == 0, out
        outputs.append(out)
        assert processes_mentioning(run_id) == []
    assert "regression   NOT ENOUGH HISTORY against 1 earlier run(s)" in outputs[1]

    listing = LocalStore(tmp_path / "runs" / "history").list()
    assert listing.problems == []
    records = [e.record for e in listing.entries]
    assert [r.run_id for r in records] == ["e2e-history-1", "e2e-history-2"]
    assert records[0].series == records[1].series  # the same series: comparable
    assert records[1].trigger == "manual" and records[1].model_display_name
    run_dir = tmp_path / "runs" / "e2e-history-2"
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["run_id"] == "e2e-history-2" and run_json["series_key"]
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert verdict["history_runs"] == 1 and verdict["overall"] == "NOT ENOUGH HISTORY"
    assert (run_dir / "locust-report.html").is_file()

    page = run_dir / "report.html"
    text = page.read_text()
    stamps = [r.started.strftime("%m-%d %H:%M:%S") for r in records]
    for chart in ("trend-p95_ms", "trend-rps", "trend-output_tokens_per_s"):
        block = re.search(rf'data-chart="{chart}">(.*?)</div>', text, re.S)
        assert block, chart
        assert all(stamp in block.group(1) for stamp in stamps), chart  # both runs on the axis
        assert "this run" in block.group(1)
    assert "e2e-history-2" in text and "clean-up" in text.lower()

    from tests.reports.browser import render

    dom, console = render(page, tmp_path)
    assert console == []
    assert dom.count('data-chart="trend-') == 3

    # A ShareGPT workload: another series (never compared with the runs above), and the
    # report shows the lengths its prompts achieved, by the model's tokenizer.
    code, out = deploytest_run(tmp_path, cache_dir, "e2e-history-3", "--workload", "sharegpt-mini")
    assert code == 0, out
    listing = LocalStore(tmp_path / "runs" / "history").list()
    third = next(e for e in listing.entries if e.record.run_id == "e2e-history-3")
    assert third.record.series.key() != records[0].series.key()
    assert third.record.series.workload and not records[0].series.workload
    assert "regression   NOT ENOUGH HISTORY against 0 earlier run(s)" in out
    run_dir = tmp_path / "runs" / "e2e-history-3"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    got = metrics["achieved"]["input_tokens"]
    assert metrics["workload"]["name"] == "sharegpt-mini" and got["p50"] < got["max"]
    dom, console = render(run_dir / "report.html", tmp_path)
    assert console == []
    lengths = re.search(r"<td>input tokens</td>(.*?)</tr>", dom, re.S).group(1)
    assert re.findall(r"<td>([^<]*)</td>", lengths)[:3] == [
        f"{got[k]:.4g}" for k in ("p50", "p90", "max")
    ]
    block = re.search(r'data-chart="length-distribution">(.*?)</div>', dom, re.S)
    assert block and "<path" in block.group(1)
    assert "sharegpt-mini" in dom and processes_mentioning("e2e-history-3") == []
