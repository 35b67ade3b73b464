"""The run report: self-contained, renders in real headless Chromium with no console message,
shows the verdicts, the trend charts with this run marked, the load chart and Locust's report."""

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
def stats_dir(tmp_path_factory):
    """A real Locust run's stats folder (3 s against a stand-in model server)."""
    out = tmp_path_factory.mktemp("stats")
    with PredictServer("ok") as server:
        run_locust(
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
    return out


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


def _page(stats_dir, tmp_path):
    import json

    (stats_dir / "correctness.json").write_text(json.dumps(CORRECTNESS))
    rng = np.random.default_rng(21)
    earlier = history(8, rng)
    me = make_entry(8, rng, slowdown=1.25)
    me.metrics.update(parity_ratio=0.5, expect_pass_ratio=1.0)
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
            slo=(1000.0, 0.01, 1.0),
            regression_mode="fail",
            cleanup=cleanup,
            locust_report_link="locust-report.html",
        )
    )
    return page


def test_report_is_self_contained(stats_dir, tmp_path):
    text = _page(stats_dir, tmp_path).read_text()
    # nothing to fetch: no external script, stylesheet, image or font
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<script" not in text
    assert "default-src 'none'" in text
    assert output_files(stats_dir)["report"].is_file()


def test_report_renders_in_chromium_with_charts_and_no_console_messages(stats_dir, tmp_path):
    dom, console = render(_page(stats_dir, tmp_path), tmp_path)
    assert console == []
    for chart in ("trend-p95_ms", "trend-rps", "trend-output_tokens_per_s", "load"):
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


def test_report_of_a_run_without_load_test_still_renders(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(build_report("local-x", stats_dir=None, cleanup_note="No clean-up record."))
    dom, console = render(page, tmp_path)
    assert console == []
    assert "did not finish" in dom and "No clean-up record." in dom
