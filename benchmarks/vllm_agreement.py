"""deploytest's load-test figures against the real vLLM engine's own, over one run.

Starts vLLM (its CPU build, `make vllm`; engines/vllm.py) on the tiny demo model, reads its
Prometheus /metrics, runs `deploytest loadtest --stream` against it with `--api
openai-completions` and with `--api openai-chat`, reads /metrics again, and prints, per API:
requests and output tokens beside vLLM's request and generation-token counters (equal when
the count is right), TTFT and E2E medians both estimated on vLLM's buckets, and the exact
means (vLLM's `_sum / _count`) as ratios ours/vLLM (ours include the HTTP round trip and
Locust's own scheduling, so a ratio a little above 1 is expected).

    .venv/bin/python benchmarks/vllm_agreement.py [--duration 20] [--users 4]
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
from serving.demo_model import build_demo_model  # noqa: E402

ROUTES = {"openai-completions": "/v1/completions", "openai-chat": "/v1/chat/completions"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per API")
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--json", default="", help="also write the results here")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory(prefix="deploytest-agree-") as tmp:
        model = build_demo_model(Path(tmp) / "tiny", size="tiny")
        print("starting vLLM (about 40 s) ...", flush=True)
        with vllm.VllmServer(model, Path(tmp) / "vllm") as server:
            for api, route in ROUTES.items():
                out = Path(tmp) / api
                before = server.metrics()
                cmd = [
                    sys.executable, "-m", "deploytest", "loadtest", "--url", server.url,
                    "--predict-path", route, "--api", api, "--stream", "-o", str(out),
                    "--duration", f"{args.duration}s", "--users", str(args.users),
                ]  # fmt: skip
                done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                if done.returncode != 0:
                    print(done.stdout + done.stderr, file=sys.stderr)
                    return 1
                delta = vllm.metrics_delta(before, server.metrics())
                metrics = json.loads((out / "metrics.json").read_text())
                hists = json.loads((out / "llm_metrics.json").read_text())["histograms"]
                a = results[api] = vllm.agreement(metrics, hists, delta)
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
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    exact = all(a["output_tokens"] == a["vllm_generation_tokens"] for a in results.values())
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
