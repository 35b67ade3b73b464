"""End-to-end: `deploytest run --serving vllm`, the demo model served by the real vLLM
engine (its CPU build, `make vllm`) as a custom container, load-tested through the
emulator's `:streamRawPredict` in the OpenAI completions API that `--api auto` picks from
the container's predict route, after the correctness phase through `:rawPredict` (vLLM's
float32 CPU engine matches the demo model's artifact on every prompt); and `kill -9` of
the run leaves no vLLM process.

Two vLLM cold starts (tens of seconds each on 2 cores); without `make vllm` the tests fail
saying so (CI installs it). The chat API against vLLM is load-tested in
tests/engines/test_vllm.py, and through the emulator's v1beta1 chat route in
tests/components/test_serving_apis_emulator.py: a third cold start here would add no more.
"""

import json
import time

import psutil
import pytest

from engines import vllm
from tests.e2e.test_run import kill_9_during, run
from tests.processes import gone

pytestmark = pytest.mark.slow

VLLM = ["--serving", "vllm", "--duration", "10s", "--users", "4", "--spawn-rate", "4"]
# Exact lengths: prompts of 32 tokens by the model's tokenizer, answers of 8 through vLLM's
# min_tokens + ignore_eos.
WORKLOAD = ["--input-tokens", "32", "--output-tokens", "8"]


def vllm_processes() -> list[psutil.Process]:
    """vLLM's API server (by its command line) and the processes it forks (they rename
    themselves VLLM::EngineCore, VLLM::Worker)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "name"]):
        try:
            text = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["name"] or "")
        except psutil.Error:
            continue
        if ("vllm.entrypoints" in text or "VLLM" in text) and not gone(proc.pid):
            found.append(proc)
    return found


@pytest.fixture(autouse=True)
def needs_vllm():
    try:
        vllm.installed_version()
    except vllm.VllmNotInstalled as err:
        pytest.fail(str(err), pytrace=False)
    assert vllm_processes() == [], "a vLLM process runs already"


def test_a_run_served_by_vllm_passes_with_llm_metrics_from_usage(tmp_path, cache_dir):
    api, why = "openai-completions", "auto: predict route /v1/completions"
    method = ":streamRawPredict"
    code, out, run_dir = run(tmp_path, cache_dir, *VLLM, *WORKLOAD, run_id=f"e2e-vllm-{api}")
    assert code == 0, out
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["outcome"]["verdict"] == "PASS", out
    assert s["serving_api"] == {"api": api, "why": why}
    m = s["metrics"]
    assert m["api"] == api and m["stream"] and m["failures"] == 0
    assert m["path"].endswith(method)
    # the correctness phase: vLLM's float32 CPU engine answers as the artifact does
    assert m["parity_ratio"] == 1.0 and m["correctness"]["parity_prompts"] == 8, out
    assert m["output_tokens_source"] == "answer"  # from each stream's usage chunk
    assert m["output_tokens"] > 0 and m["ttft_p50_ms"] > 0
    # Not TPOT > 0: when the API server lags behind the engine (4 users on 2 cores), vLLM
    # merges the deltas of a stream into one chunk (vllm/v1/engine/output_processor.py,
    # RequestOutputCollector: "RequestOutputs are merged if the producer gets ahead of the
    # consumer"), so a short answer may come whole with its first token: TPOT and ITL ~0.
    assert m["itl_p50_ms"] is not None and m["tpot_p50_ms"] is not None
    # every prompt 32 tokens, every answer 8 (usage's count), as asked
    got = m["achieved"]
    assert (got["input_tokens"]["p50"], got["input_tokens"]["max"]) == (32, 32), out
    assert (got["output_tokens"]["p50"], got["output_tokens"]["max"]) == (8, 8), out
    assert m["output_tokens_p50"] == 8 and not m["workload_warning"]
    assert s["left"] == {"endpoints": [], "processes": []}
    assert f"serving API  {api} ({why})" in out
    assert vllm_processes() == []
    # vLLM's caches and temporary files stay in the run folder
    assert (run_dir / "vllm" / "tmp").is_dir()


def test_kill_9_of_a_vllm_run_leaves_no_vllm_process(tmp_path, cache_dir):
    seen = []

    def vllm_started() -> None:  # killed while vLLM's engine starts: the deploy's hardest part
        deadline = time.monotonic() + 60
        while not seen and time.monotonic() < deadline:
            seen.extend(vllm_processes())
            time.sleep(0.2)

    killed = kill_9_during(
        tmp_path, cache_dir, "model-deploy", *VLLM, "--duration", "60s",
        run_id="vllm-kill9", before_kill=vllm_started,
    )  # fmt: skip
    assert seen, "the deploy should have started vLLM"
    # the emulator sees its owner gone, undeploys and stops vLLM's group (SIGTERM, then
    # SIGKILL after the grace period)
    while vllm_processes() and time.monotonic() - killed < 30:
        time.sleep(0.2)
    left = vllm_processes()
    assert left == [], [" ".join(p.cmdline()) for p in left]
    print(f"no vLLM process {time.monotonic() - killed:.1f} s after kill -9")
