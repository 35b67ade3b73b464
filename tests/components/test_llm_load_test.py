"""LLM metrics and load shapes: real Locust against a scripted streaming server."""

from __future__ import annotations

import json
import math

import pytest

from components.load_options import LoadOptions
from components.metrics_schema import LoadTestMetrics
from components.runtime.load_test import output_files, run_locust
from tests.components.conftest import LOCUSTFILE, REPO
from tests.components.stream_server import StreamServer

pytestmark = pytest.mark.usefixtures("no_process_left_behind")

VERTEX_STYLE = REPO / "tests" / "fixtures" / "vertex_style_locustfile.py"
STREAM_PATH = "/v1/projects/p/locations/l/endpoints/1:streamRawPredict"


def _run(server, out_dir, load: LoadOptions, **kwargs) -> dict:
    args = dict(
        locustfile=LOCUSTFILE,
        host=server.url,
        path=STREAM_PATH,
        users=4,
        spawn_rate=4,
        duration="4s",
        processes=1,
        out_dir=out_dir,
        max_new_tokens=8,
        load=load,
        progress_interval_s=0,
    )
    args.update(kwargs)
    return run_locust(**args)


def test_ttft_and_itl_match_the_scripted_timings(tmp_path):
    """TTFT 150 ms, 20 ms between tokens: p50s within 5 % of the truth."""
    with StreamServer("ok", ttft_s=0.150, itl_s=0.020, tokens=8) as server:
        m = _run(server, tmp_path, LoadOptions(stream=True, slo_ttft_ms=100, slo_tpot_ms=1000))
        assert server.paths == {STREAM_PATH}
    assert m["failures"] == 0 and m["requests"] > 0
    assert m["ttft_p50_ms"] == pytest.approx(150, rel=0.05)
    assert m["itl_p50_ms"] == pytest.approx(20, rel=0.05)
    assert m["tpot_p50_ms"] == pytest.approx(20, rel=0.05)
    assert m["e2e_p50_ms"] == pytest.approx(150 + 7 * 20, rel=0.05)
    assert m["output_tokens"] == 8 * m["requests"] and m["output_tokens_p50"] == 8
    assert m["normalized_p50_ms"] == pytest.approx(m["e2e_p50_ms"] / 8, rel=0.02)
    # TTFT 150 ms misses the 100 ms target: no request is good. (A TTFT target, not a TPOT
    # one: a client starved of CPU reads a stream's chunks late and together, which can only
    # lengthen its TTFT but can shorten its TPOT; the TPOT target is met, 20 <= 1000.)
    assert m["good_requests"] == 0 and m["goodput_rps"] == 0 and m["goodput_ratio"] == 0
    assert m["llm_unavailable"] == {}
    assert m["client_cpu_ms_per_request"] > 0
    assert LoadTestMetrics.from_json(output_files(tmp_path)["metrics"].read_text()).stream
    # Locust's own report rows: LLM metrics under their names; requests stay requests.
    entries = json.loads(output_files(tmp_path)["json"].read_text())
    rows = {(e["method"], e["name"]) for e in entries}
    assert {("LLM", "TTFT (ms)"), ("LLM", "TPOT (ms)")} <= rows
    assert ("POST", "predict") in rows
    # The history's latency histogram is the requests' own, not the LLM rows.
    from history.store import response_times_from_locust

    times = response_times_from_locust(output_files(tmp_path)["json"])
    assert sum(times.values()) == m["requests"]


def test_goodput_counts_requests_meeting_their_targets(tmp_path):
    with StreamServer("ok", ttft_s=0.05, itl_s=0.005, tokens=4) as server:
        m = _run(server, tmp_path, LoadOptions(stream=True, slo_ttft_ms=2000, slo_tpot_ms=500))
    assert m["good_requests"] == m["requests"] > 0
    assert m["goodput_ratio"] == 1.0
    assert math.isclose(m["goodput_rps"], m["rps"], rel_tol=1e-6)


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("midway", "stream ended without [DONE]"),
        ("garbage", "a chunk is not JSON"),
        ("zero", "zero tokens in the stream"),
        ("error", "error event in the stream"),
        ("silent", "stream broken"),
    ],
)
def test_bad_streams_are_failures_with_a_reason(tmp_path, mode, reason, monkeypatch):
    monkeypatch.setenv("DEPLOYTEST_REQUEST_TIMEOUT_S", "1")
    with StreamServer(mode, ttft_s=0.01, itl_s=0.005, tokens=4, silent_s=3) as server:
        m = _run(server, tmp_path, LoadOptions(stream=True, slo_tpot_ms=100), duration="3s")
    assert m["requests"] > 0 and m["failures"] == m["requests"]
    assert reason in output_files(tmp_path)["failures_csv"].read_text()
    assert m["ttft_p50_ms"] is None and m["tpot_p50_ms"] is None  # nothing to divide by
    assert m["good_requests"] == 0 and m["output_tokens"] == 0


def test_non_streaming_says_which_llm_metrics_are_missing(tmp_path):
    with StreamServer("ok", tokens=5) as server:
        m = _run(server, tmp_path, LoadOptions(), path="/predict")
    assert m["failures"] == 0 and m["output_tokens"] == 5 * m["requests"]
    assert m["e2e_p50_ms"] is not None and m["ttft_p50_ms"] is None
    assert set(m["llm_unavailable"]) == {"ttft", "itl", "tpot", "goodput"}
    assert "not streamed" in m["llm_unavailable"]["ttft"]


def test_open_loop_rate_50_arrives_at_50_per_second(tmp_path):
    """Poisson arrivals at 50/s for 20 s (seeded schedule): the achieved rate is within 5 %."""
    load = LoadOptions(stream=True, load_shape="rate", rate=50, max_concurrency=32, seed=7)
    with StreamServer("ok", ttft_s=0.02, itl_s=0.005, tokens=4) as server:
        m = _run(server, tmp_path, load, duration="20s")
    assert m["load_shape"] == "rate" and m["offered_rate"] == 50
    assert m["arrival_rate"] == pytest.approx(50, rel=0.05)
    assert m["rps"] == pytest.approx(50, rel=0.05)
    assert m["failures"] == 0 and m["delayed"] <= 0.01 * m["requests"]
    assert m["max_concurrency"] == 32


def test_a_cap_too_small_delays_arrivals(tmp_path):
    """One user for 20 arrivals/s of 200 ms requests: most arrivals wait, and it says so."""
    load = LoadOptions(stream=True, load_shape="rate", rate=20, max_concurrency=1, seed=1)
    with StreamServer("ok", ttft_s=0.15, itl_s=0.01, tokens=4) as server:
        m = _run(server, tmp_path, load, duration="3s")
    assert m["delayed"] > 0 and m["delayed"] + m["dropped"] > m["requests"] / 2
    assert m["arrival_rate"] < 10


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (dict(load_shape="rate", rate=0.0), "must be > 0"),
        (dict(load_shape="rate", rate=-1.0), "must be > 0"),
        (dict(load_shape="rate"), "needs --rate"),
        (dict(load_shape="sweep"), "needs an SLO"),
        (dict(load_shape="steps", steps="10s:0"), "bad step"),
        (dict(load_shape="sweep", slo_p95_ms=100, sweep_rates="4,2"), "rising"),
        (dict(slo_tpot_ms=0.0), "--slo-tpot-ms must be > 0"),
        (dict(load_shape="bursts"), "load shape must be one of"),
    ],
)
def test_bad_load_options_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        LoadOptions(**options).validate()


def test_open_loop_needs_one_process():
    with pytest.raises(ValueError, match="one Locust process"):
        LoadOptions(load_shape="rate", rate=5).validate(processes=2)


def test_sweep_finds_the_knee(tmp_path):
    """140 ms a request, 4 users: 64/s is far past the cap (arrivals wait), 2 and 4/s are not."""
    load = LoadOptions(
        stream=True,
        load_shape="sweep",
        sweep_rates="2,4,64",
        stage_s=2,
        max_concurrency=4,
        slo_ttft_ms=1000,
        seed=3,
    )
    with StreamServer("ok", ttft_s=0.1, itl_s=0.01, tokens=4) as server:
        m = _run(server, tmp_path, load, duration="1s")
    stages = json.loads(output_files(tmp_path)["llm"].read_text())["stages"]
    assert [s["offered_rate"] for s in stages] == [2, 4, 64]
    assert [s["passed"] for s in stages] == [True, True, False]
    assert m["knee_rps"] == 4 and m["load_shape"] == "sweep"
    chart = output_files(tmp_path)["sweep_chart"].read_text()
    assert chart.startswith("<svg") and "knee 4 requests/s" in chart
    assert chart.count("<circle") == 3 * 3  # three stages in each of three panels


def test_a_usual_vertex_style_locustfile_runs_unmodified(tmp_path, monkeypatch):
    """VERTEX_AI_ENDPOINT_HOST/PATH come from the component; google.auth.default() works
    offline from a credentials file whose token endpoint is on 127.0.0.1."""
    from tests.fixtures.google_offline import TOKEN, OfflineGoogleAuth

    with OfflineGoogleAuth(tmp_path) as google, StreamServer("ok", tokens=3) as server:
        for key, value in google.env.items():
            monkeypatch.setenv(key, value)
        m = _run(server, tmp_path / "out", LoadOptions(stream=True), locustfile=VERTEX_STYLE)
        assert google.refreshes >= 1
        assert server.auth_headers == {f"Bearer {TOKEN}"}
        # Streaming asks for :streamRawPredict; the user's file gets the :predict path.
        assert server.paths == {STREAM_PATH.replace(":streamRawPredict", ":predict")}
    assert m["requests"] > 0 and m["failures"] == 0
    assert m["output_tokens"] == 0 and m["ttft_p50_ms"] is None
    assert set(m["llm_unavailable"]) == {
        "ttft", "itl", "tpot", "e2e", "normalized", "output_tokens", "goodput"
    }  # fmt: skip
    assert "locustfile of your own" in m["llm_unavailable"]["ttft"]
