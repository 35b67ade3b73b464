"""The run report: self-contained, renders in real headless Chromium with no console message,
shows the verdicts, the gate's own checks, the LLM table with the latency distribution, the
workload and its achieved lengths, the cost, the trend charts with this run marked, the load
chart and Locust's report."""

from __future__ import annotations

import re

import numpy as np
import pytest

from components.runtime.load_test import output_files, run_locust
from history.verdict import judge
from reports.run_report import build_report
from tests.components.conftest import (  # noqa: F401 (a fixture)
    LOCUSTFILE,
    PREDICT_PATH,
    no_process_left_behind,
)
from tests.components.predict_server import PredictServer
from tests.history.synthetic import history, make_entry
from tests.reports.browser import render

pytestmark = pytest.mark.usefixtures("no_process_left_behind")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real Locust run (3 s against a stand-in model server): its stats folder and the
    metrics it wrote."""
    out = tmp_path_factory.mktemp("stats")
    with PredictServer("ok") as server:
        metrics = run_locust(
            locustfile=LOCUSTFILE,
            host=server.url,
            path=PREDICT_PATH,
            users=2,
            spawn_rate=2,
            duration="3s",
            processes=1,
            out_dir=out,
            max_new_tokens=4,
            progress_interval_s=0,
        )
    return out, metrics


@pytest.fixture(scope="module")
def stats_dir(run):
    return run[0]


# A workload as metrics.json (schema 6) holds it, with the lengths it achieved.
WORKLOAD = {
    "workload": {"name": "sharegpt-mini", "seed": 0, "input_tokens": "dataset",
                 "output_tokens": "dataset", "dataset": {"path": "sharegpt-mini.json",
                                                         "format": "sharegpt"}},
    "workload_id": "0123456789ab", "workload_requests": 16,
    "achieved": {"input_tokens": {"p50": 41, "p90": 77, "max": 90, "mean": 45.5},
                 "output_tokens": {"p50": 30, "p90": 60, "max": 64, "mean": 33.0}},
    "input_tokens_per_s": 900.0, "total_tokens_per_s": 1560.0,
    "slo_ttft_ms": 50.0, "good_requests": 40, "goodput_rps": 9.5, "goodput_ratio": 0.95,
    "ttft_p50_ms": 12.0, "ttft_p90_ms": 20.0, "ttft_p95_ms": 24.0, "ttft_p99_ms": 31.0,
    "ttft_mean_ms": 14.0,
}  # fmt: skip
COST = {
    "status": "known", "reason": "", "usd": 0.0123, "billed_replica_seconds": 60.0,
    "endpoint_seconds": 70.0, "output_tokens": 100, "usd_per_1k_output_tokens": 0.123,
    "items": [{"endpoint": "projects/p/locations/l/endpoints/1", "machine_type": "g2-standard-8",
               "seconds": 60.0, "replicas": 1, "usd_per_hour": 0.738, "usd": 0.0123}],
    "basis": "replica-seconds times the hourly price",
    "price_table": {"date": "2026-11-01", "verified": False}, "price_overrides": {},
    "billing_id": "",
}  # fmt: skip
GATE = {
    "slo_p95_ms": 1000.0, "max_failure_ratio": 0.01, "min_rps": 1.0,
    "slo_checks": ["ttft_p95_ms<=30"], "min_parity": 1.0, "min_expect_pass": 1.0,
}  # fmt: skip


# What correctness/phase.py writes, one prompt matching and one not (an answer with markup).
CORRECTNESS = {
    "api": "deploytest", "tokens_compared": 16, "deterministic": True, "note": "",
    "parity": {
        "reference": "gs://models/gpt2", "ratio": 0.5, "matched": 1,
        "prompts": [
            {"prompt": "Hello", "answer": " world", "reference": " world", "error": "",
             "common_prefix": 16, "match_ratio": 1.0, "matched": True},
            {"prompt": "Bye", "answer": "<b>now</b>", "reference": " then", "error": "",
             "common_prefix": 0, "match_ratio": 0.0, "matched": False},
        ],
    },
    "expectations": {"ratio": 1.0, "passed": 1, "results": [
        {"line": 1, "name": "greets", "prompt": "Hello", "answer": " world",
         "output_tokens": 2, "failed": []},
    ]},
    "seconds": 0.4,
}  # fmt: skip


def _page(run, tmp_path):
    import json

    stats_dir, measured = run
    (stats_dir / "correctness.json").write_text(json.dumps(CORRECTNESS))
    rng = np.random.default_rng(21)
    earlier = history(8, rng)
    me = make_entry(8, rng, slowdown=1.25)
    # this run's own numbers: the real run's LLM fields and distributions, the synthetic
    # history's headline numbers (so the verdict is a regression), a workload on top
    keep = {"p50_ms", "p95_ms", "p99_ms", "rps", "output_tokens_per_s", "failure_ratio"}
    me.metrics.update({k: v for k, v in measured.items() if k not in keep})
    me.metrics.update(WORKLOAD, parity_ratio=0.5, expect_pass_ratio=1.0)
    verdict = judge(me, earlier)
    verdict.correctness_drift = {
        "state": "DRIFT", "baseline_run": "synthetic-0007", "compared": 2, "changed": 1,
        "prompts": [{"prompt": "Bye", "before": " then", "now": "<b>now</b>"}],
    }  # fmt: skip
    cleanup = {
        "run_label": "synthetic-0008",
        "seconds": 1.5,
        "left": [],
        "endpoints": [
            {
                "name": "projects/p/locations/l/endpoints/1",
                "undeployed_models": ["7"],
                "deleted": True,
            }
        ],
    }
    page = tmp_path / "report.html"
    page.write_text(
        build_report(
            me.record.run_id,
            stats_dir=stats_dir,
            record=me.record,
            metrics=me.metrics,
            series=[*earlier, me],
            verdict=verdict,
            gate=GATE,
            regression_mode="fail",
            cleanup=cleanup,
            locust_report_link="locust-report.html",
            cost=COST,
        )
    )
    return page


def test_report_is_self_contained(run, stats_dir, tmp_path):
    text = _page(run, tmp_path).read_text()
    # nothing to fetch: no external script, stylesheet, image or font
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<script" not in text
    assert "default-src 'none'" in text
    assert output_files(stats_dir)["report"].is_file()


def test_report_renders_in_chromium_with_charts_and_no_console_messages(run, tmp_path):
    dom, console = render(_page(run, tmp_path), tmp_path)
    assert console == []
    charts = ("trend-p95_ms", "trend-rps", "trend-output_tokens_per_s", "load")
    for chart in (*charts, "latency-distribution", "length-distribution"):
        block = re.search(rf'data-chart="{chart}">(.*?)</div>', dom, re.S)
        assert block and "<svg" in block.group(1) and "<path" in block.group(1), chart
    # the verdicts and the tables are on the page
    assert 'class="REGRESSION"' in dom and "p95 latency" in dom
    assert "SLO gate" in dom and "requests" in dom
    assert "projects/p/locations/l/endpoints/1" in dom  # clean-up record
    assert 'href="locust-report.html"' in dom
    # this run is marked on the trend charts (the legend names it)
    assert dom.count("this run") >= 3
    # the correctness phase: parity per prompt, expectations, drift; answers shown as text
    assert "1 of 2 prompts match over their first 16 tokens (50%)" in dom
    assert "parity_ratio" in dom and "expect_pass_ratio" in dom  # in the gate's table
    assert "1 of 1 met (100%)" in dom
    assert "DRIFT: 1 of 2 answers differ from the last PASS run synthetic-0007" in dom
    assert "&lt;b&gt;now&lt;/b&gt;" in dom and "<b>now</b>" not in dom


def test_report_shows_what_the_summary_shows(run, tmp_path):
    """The LLM table, tokens/s, goodput, the workload and its achieved lengths, the cost and
    the gate's extra checks: the terminal summary's facts, on the page."""
    measured = run[1]
    dom, console = render(_page(run, tmp_path), tmp_path)
    assert console == []
    # the LLM table: E2E percentiles of the real run, TTFT of the workload's figures
    e2e = re.search(r"<td>end to end \(E2E\)</td>(.*?)</tr>", dom, re.S).group(1)
    assert f"{measured['e2e_p95_ms']:.4g} ms" in e2e
    assert re.search(r"time to first token \(TTFT\)</td><td>12 ms</td><td>20 ms</td>", dom)
    assert "tokens/s: 900.0 input + " in dom and "= 1560.0 total" in dom
    assert "goodput: 9.50 requests/s (95% of requests met TTFT &lt;= 50 ms)" in dom
    # the workload: described, its identity, its achieved lengths
    assert "sharegpt-mini" in dom and "0123456789ab" in dom and "16 distinct requests" in dom
    lengths = re.search(r"<td>input tokens</td>(.*?)</tr>", dom, re.S).group(1)
    assert re.findall(r"<td>([^<]*)</td>", lengths) == ["41", "77", "90", "45.5"]
    # the cost, as the summary says it
    assert "$0.0123 for 60.0 replica-seconds" in dom and "g2-standard-8" in dom
    # the gate's extra check is in the SLO table, judged as the gate judges it
    row = re.search(r"<td>ttft_p95_ms</td>(.*?)</tr>", dom, re.S).group(1)
    assert "24" in row and 'class="PASS"' in row
    # the headline latency says which numbers it is
    assert "(E2E of the successful requests)" in dom


def test_report_of_a_run_without_load_test_still_renders(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(build_report("local-x", stats_dir=None, cleanup_note="No clean-up record."))
    dom, console = render(page, tmp_path)
    assert console == []
    assert "did not finish" in dom and "No clean-up record." in dom
