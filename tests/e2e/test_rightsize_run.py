"""End-to-end: `deploytest run --candidate ...` deploys the demo model on each candidate in
turn (the emulator's machine profiles make the machine types differ), sweeps each to its
knee, marks a candidate whose deploy failed, recommends the cheapest that carries the
required rate, and leaves nothing behind; its report shows the candidates in Chromium."""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.processes import processes_mentioning

pytestmark = pytest.mark.slow

RUN_ID = "e2e-rightsize"
# Far from each profile's capacity (n1-standard-2 carries about 4 req/s here, n1-standard-8
# about 50): 2 req/s both pass, 32 only the big one. 4 s stages: at 2 req/s a stage gets
# about 8 Poisson arrivals (2 s would leave one with none, some runs: a failed stage).
# The SLO is loose so that a slow Poisson burst at 2 req/s (8 samples) cannot break the
# small machine's first stage; at 32 req/s it breaks anyway (every user busy: the cap).
SWEEP = ["--load-shape", "sweep", "--sweep-rates", "2,32", "--stage-s", "4"]
SWEEP += ["--slo-p95-ms", "3000", "--slo-ttft-ms", "3000"]
CANDIDATES = ["--candidate", "n1-standard-2", "--candidate", "n1-standard-8"]
# a third candidate whose deploy fails (a stockout, say): marked failed, the others go on
FAILING = ["--candidate", "e2-standard-4", "--fault", "deploy-fail"]
FAILING += ["--fault-machine-type", "e2-standard-4"]


def test_candidates_are_swept_a_failed_one_marked_and_the_cheapest_recommended(tmp_path, cache_dir):
    cmd = [
        sys.executable, "-m", "deploytest", "run", "--run-id", RUN_ID,
        "--output-dir", str(tmp_path / "runs"), "--cache-dir", str(cache_dir),
        *SWEEP, *CANDIDATES, *FAILING, "--required-rps", "20",
    ]  # fmt: skip
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    run_dir = tmp_path / "runs" / RUN_ID
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["outcome"]["verdict"] == "PASS", summary["outcome"]
    rec = json.loads((run_dir / "recommendation.json").read_text())
    rows = {row["key"]: row for row in rec["candidates"]}
    small, big, failed = rows["n1-standard-2"], rows["n1-standard-8"], rows["e2-standard-4"]
    # the machine profiles order the knees: the bigger machine carries more
    assert small["outcome"] == big["outcome"] == "measured"
    assert 0 < small["knee_rps"] < big["knee_rps"]
    assert small["output_tokens_per_s"] < big["output_tokens_per_s"]
    assert failed["outcome"] == "failed" and "deploy" in failed["reason"]
    # 20 req/s: many small replicas cost more than one big machine
    assert small["replicas_needed"] > 1 and big["replicas_needed"] == 1
    assert small["usd_per_hour_needed"] > big["usd_per_hour_needed"]
    assert rec["recommended"]["machine_type"] == "n1-standard-8" and rec["replicas"] == 1
    assert "recommended  n1-standard-8 x 1 replica(s) for 20 requests/s" in out
    # every candidate was a history entry of its own series; the failed one has none
    history = sorted(p.name for p in (tmp_path / "runs" / "history").iterdir())
    assert [h.split("-", 1)[1] for h in history] == [
        f"{RUN_ID}-n1-standard-2", f"{RUN_ID}-n1-standard-8",
    ]  # fmt: skip
    # three endpoints, all gone; no model server left
    cleanup = summary["cleanup"]
    assert cleanup["ok"] and len(cleanup["endpoints"]) == 3
    assert all(e["deleted"] for e in cleanup["endpoints"])
    assert summary["left"] == {"endpoints": [], "processes": []}
    assert processes_mentioning(RUN_ID) == []

    from tests.reports.browser import render

    dom, console = render(run_dir / "report.html", tmp_path)
    assert console == []
    assert re.search(r"id=\"recommended\">Recommended: <b>n1-standard-8</b> x 1", dom)
    assert dom.count("<svg") == 1 and "cost against throughput" in dom
    # each measured candidate links its own run report
    links = re.findall(r'<a href="(kfp/[^"]+/record-run/report)">', dom)
    assert len(links) == 2 and all((run_dir / link).is_file() for link in links)
