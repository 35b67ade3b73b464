"""Run real Locust headless as a subprocess and turn its stats into a metrics dict.

Plain Python (no KFP); the load-test component and the CLI call `run_locust`. Locust is never
imported here: importing it monkey-patches the whole process with gevent.

Files written into `out_dir`:
    report.html                 Locust's HTML report
    locust_stats.csv            per-request and "Aggregated" stats (Locust --csv)
    locust_stats_history.csv    the Aggregated row once a second
    locust_failures.csv         failures grouped by message
    locust_exceptions.csv       exceptions raised in the locustfile
    locust_stats.json           Locust's JSON stats (--json-file), one object per request name
    locust.log                  everything Locust printed
    llm_metrics.json            the locustfile's LLM summary (loadtests/llm_stats.py), if any
    sweep.svg                   steps and sweep: rate against E2E p95, TTFT p95, goodput
    metrics.json                components.metrics_schema.LoadTestMetrics
"""

from __future__ import annotations

import collections
import csv
import datetime
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from components import llm_metrics, sweep_chart
from components.load_options import LoadOptions
from components.metrics_schema import LoadTestMetrics
from loadtests.apis import get_api

CSV_PREFIX = "locust"
JSON_STEM = "locust_stats"  # Locust appends ".json"
REPORT_NAME = "report.html"
LOG_NAME = "locust.log"
METRICS_NAME = "metrics.json"
LINE_PREFIX = "[locust] "
_SOURCE = {"requests": "successful requests, exact", "locust": "Locust's rounded histogram"}

_TIMESPAN = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")


class LocustRunError(RuntimeError):
    """Locust did not run to completion, or left no usable stats."""


def parse_duration(duration: str) -> int:
    """Seconds in a Locust time span: `20` or `20s`, `2m`, `1h30m`, `1h2m3s`. Must be > 0."""
    if not isinstance(duration, str):
        raise ValueError(f"duration must be a string like '30s', '2m' or '1h30m', got {duration!r}")
    text = duration.strip()
    if text.isdigit():
        seconds = int(text)
    else:
        match = _TIMESPAN.match(text) if text else None
        if not match or not any(match.groupdict().values()):
            raise ValueError(
                f"duration {duration!r} is not a Locust time span: use e.g. '30s', '2m', '1h30m'"
            )
        parts = {k: int(v) for k, v in match.groupdict().items() if v}
        seconds = parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)
    if seconds <= 0:
        raise ValueError(f"duration {duration!r} must be longer than 0 seconds")
    return seconds


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_inputs(
    locustfile: str | os.PathLike,
    host: str,
    path: str,
    users: int,
    spawn_rate: float,
    duration: str,
    processes: int,
    max_new_tokens: int = 16,
    auth: str = "none",
    prompts: str | os.PathLike | None = None,
    timeout_s: float | None = None,
    stop_timeout_s: int = 30,
) -> int:
    """Raises ValueError/FileNotFoundError naming the bad input; returns the duration in s."""
    seconds = parse_duration(duration)
    if not Path(locustfile).is_file():
        raise FileNotFoundError(f"locustfile {locustfile} does not exist")
    if not isinstance(host, str) or not re.match(r"^https?://[^/\s]+", host):
        raise ValueError(f"host must be an http(s) URL like http://127.0.0.1:8080, got {host!r}")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"path must start with '/', got {path!r}")
    if not _is_int(users) or users < 1:
        raise ValueError(f"users must be an integer >= 1, got {users!r}")
    if isinstance(spawn_rate, bool) or not isinstance(spawn_rate, int | float) or spawn_rate <= 0:
        raise ValueError(f"spawn_rate must be > 0 users/s, got {spawn_rate!r}")
    if not _is_int(processes):
        raise ValueError(f"processes must be an integer, got {processes!r}")
    if processes != -1 and processes < 1:
        raise ValueError(f"processes must be -1 (one per core) or >= 1, got {processes}")
    if not _is_int(max_new_tokens) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    if auth not in ("none", "google"):
        raise ValueError(f"auth must be 'none' or 'google', got {auth!r}")
    if prompts is not None and not Path(prompts).is_file():
        raise FileNotFoundError(f"prompts file {prompts} does not exist")
    if not _is_int(stop_timeout_s) or stop_timeout_s < 0:
        raise ValueError(f"stop_timeout_s must be an integer >= 0, got {stop_timeout_s!r}")
    if timeout_s is not None and timeout_s <= seconds:
        raise ValueError(f"timeout_s ({timeout_s}) must be longer than the duration ({seconds} s)")
    return seconds


def predict_target(
    resource_name: str,
    api_endpoint: str,
    location: str,
    api: str = "deploytest",
    stream: bool = False,
) -> tuple[str, str, str]:
    """(host, path, auth) for an endpoint resource name; ValueError on bad input.

    `api_endpoint` (e.g. the emulator's http://127.0.0.1:PORT) wins, without auth; otherwise the
    regional Vertex AI host with a Google access token. The path is the Vertex AI method the
    serving API `api` goes through (loadtests/apis.py: `:predict`, `:rawPredict`,
    `:streamRawPredict`, or v1beta1 `chat/completions`).
    """
    match = re.fullmatch(
        r"projects/([^/]+)/locations/([^/]+)/endpoints/([^/:]+)", (resource_name or "").strip()
    )
    if not match:
        raise ValueError(
            "endpoint artifact metadata['resourceName'] must look like "
            f"projects/P/locations/L/endpoints/E, got {resource_name!r}"
        )
    resource_location = match.group(2)
    path = get_api(api).vertex_path(match.group(0), stream)
    api_endpoint = (api_endpoint or "").strip().rstrip("/")
    if api_endpoint:
        if not re.match(r"^https?://", api_endpoint):
            api_endpoint = "http://" + api_endpoint
        return api_endpoint, path, "none"
    location = (location or "").strip() or resource_location
    if location != resource_location:
        raise ValueError(
            f"location {location!r} differs from the endpoint's location {resource_location!r}"
        )
    return f"https://{location}-aiplatform.googleapis.com", path, "google"


MODEL_CONFIG = "model_config.json"  # the model's config.json, beside its tokenizer


def fetch_tokenizer(api: str, model_uri: str, out_dir: str | os.PathLike) -> str:
    """A local tokenizer.json: the model artifact's own, copied from `model_uri` (a folder,
    local or gs://) into `out_dir`, with its config.json when there is one (the model's
    context, for a workload). It counts the prompts' input tokens, the output tokens of
    answers that carry no count, and spreads multi-token chunks. "" when there is none
    (then output counts are marked as estimated in metrics.json, input tokens not counted)."""
    from loadtests.tokens import TOKENIZER_FILE

    if not model_uri:
        return ""
    target = Path(out_dir) / TOKENIZER_FILE
    try:
        _copy_model_file(model_uri, TOKENIZER_FILE, target)
    except Exception as exc:  # no tokenizer is a fact to report, not a failed load test
        print(f"{LINE_PREFIX}no tokenizer at {model_uri} ({exc}): token counts estimated")
        target.unlink(missing_ok=True)
        return ""
    try:
        _copy_model_file(model_uri, "config.json", Path(out_dir) / MODEL_CONFIG)
    except Exception:  # optional: the context is then unknown
        pass
    print(f"{LINE_PREFIX}counting tokens with {model_uri}/{TOKENIZER_FILE} (api {api})", flush=True)
    return str(target)


def _copy_model_file(model_uri: str, name: str, target: Path) -> None:
    if model_uri.startswith("gs://"):
        from google.cloud import storage

        blob = storage.Blob.from_string(model_uri.rstrip("/") + "/" + name)
        blob.download_to_filename(str(target), client=storage.Client())
        return
    source = Path(model_uri)
    source = source / name if source.is_dir() else source.with_name(name)
    target.write_bytes(source.read_bytes())


def prepare_workload(
    workload: str,
    tokenizer: str,
    out_dir: str | os.PathLike,
    config: str | os.PathLike | None = None,
) -> tuple[str, int | None]:
    """The workload (JSON text) with its dataset copied to `out_dir` when it is on gs://, and
    the model's context (from `config`, the model's config.json; default the copy beside the
    tokenizer that fetch_tokenizer makes); its requests built once so that a spec the model
    cannot take fails before any load (WorkloadError names why). ("", None) without a
    workload. The load-test task and `deploytest loadtest` both call it."""
    import dataclasses

    from loadtests.workload import Dataset, build_requests, context_tokens, parse_workload_json

    if not workload:
        return "", None
    spec = parse_workload_json(workload)
    if not tokenizer:
        raise ValueError(
            "a workload builds its prompts with the model's tokenizer, and the model artifact "
            "has no tokenizer.json"
        )
    context = context_tokens(config or Path(tokenizer).with_name(MODEL_CONFIG))
    if spec.dataset is not None and spec.dataset.path.startswith("gs://"):
        from google.cloud import storage

        local = Path(out_dir) / ("workload_dataset." + spec.dataset.format)
        local.parent.mkdir(parents=True, exist_ok=True)
        blob = storage.Blob.from_string(spec.dataset.path)
        blob.download_to_filename(str(local), client=storage.Client())
        spec = dataclasses.replace(spec, dataset=Dataset(str(local), spec.dataset.format))
    built = build_requests(spec, tokenizer, context)
    for note in built.notes:
        print(f"{LINE_PREFIX}workload: {note}", flush=True)
    print(f"{LINE_PREFIX}workload {spec.describe()}: {len(built.requests)} requests", flush=True)
    return json.dumps(spec.to_spec()), context


def output_files(out_dir: str | os.PathLike) -> dict[str, Path]:
    out = Path(out_dir)
    return {
        "report": out / REPORT_NAME,
        "stats_csv": out / f"{CSV_PREFIX}_stats.csv",
        "history_csv": out / f"{CSV_PREFIX}_stats_history.csv",
        "failures_csv": out / f"{CSV_PREFIX}_failures.csv",
        "exceptions_csv": out / f"{CSV_PREFIX}_exceptions.csv",
        "json": out / f"{JSON_STEM}.json",
        "log": out / LOG_NAME,
        "llm": out / llm_metrics.LLM_STATS_NAME,
        "sweep_chart": out / "sweep.svg",
        "metrics": out / METRICS_NAME,
    }


def _network_plugin() -> Path:
    import loadtests  # data only: its folder, not its code

    return Path(loadtests.__file__).with_name("http_user_network.py")


NETWORK_PLUGIN = _network_plugin()


def build_command(
    locustfile: str | os.PathLike,
    host: str,
    users: int,
    spawn_rate: float,
    duration: str,
    processes: int,
    out_dir: str | os.PathLike,
    stop_timeout_s: int = 30,
) -> list[str]:
    out = Path(out_dir)
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        # the user's file, and the proxy and CA variables for its HttpUsers (see there)
        f"{locustfile},{NETWORK_PLUGIN}",
        "--headless",
        "--host",
        host,
        "-u",
        str(users),
        "-r",
        f"{spawn_rate:g}",
        "-t",
        duration.strip(),
        "--csv",
        str(out / CSV_PREFIX),
        "--html",
        str(out / REPORT_NAME),
        "--json-file",
        str(out / JSON_STEM),
        "--only-summary",
        # At the end of the run, let requests in flight finish (slow models) instead of
        # dropping them; Locust stops each user after its current request.
        "--stop-timeout",
        str(stop_timeout_s),
        # Failed requests are data for the SLO gate, not a crash: exit 0 unless Locust broke.
        "--exit-code-on-error",
        "0",
    ]
    if processes != 1:
        # Master and forked workers talk over loopback on a free port: the default
        # (*:5557) would listen on every interface and collide with another run.
        port = str(_free_port())
        cmd += ["--processes", str(processes), "--master-bind-host", "127.0.0.1"]
        cmd += ["--master-bind-port", port, "--master-port", port]
    return cmd


def _plain_predict_path(path: str) -> str:
    """A user's own locustfile sends plain predict bodies: give it `:predict`, not the stream."""
    if path.endswith(":streamRawPredict"):
        return path.removesuffix(":streamRawPredict") + ":predict"
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _locust_version() -> str:
    try:
        return importlib_metadata.version("locust")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def _kill_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM Locust's whole process group (master and --processes workers), then SIGKILL."""
    from procgroup import stop_group

    stop_group(proc, grace_s)


class _Terminated(BaseException):
    """SIGTERM arrived while Locust ran (raised from the signal handler)."""


def _float(value: str | None) -> float:
    if value in (None, "", "N/A"):
        return 0.0
    return float(value)


def _last_history_row(history_csv: Path) -> dict[str, str] | None:
    try:
        with history_csv.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError:
        return None
    return rows[-1] if rows else None


def percentile(response_times: dict[float, int], count: int, percent: float) -> float:
    """Locust's own percentile over its bucketed response times (stats.py), so the numbers match
    the HTML report."""
    wanted = int(count * percent)
    processed = 0
    for response_time in sorted(response_times, reverse=True):
        processed += response_times[response_time]
        if count - processed <= wanted:
            return float(response_time)
    return 0.0


def parse_results(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The numbers of a finished run, from Locust's JSON stats.

    The JSON (`--json-file`) is written at shutdown from the final in-memory stats, the same
    ones the HTML report shows (the CSV is rewritten only once a second while running, so its
    last state can miss the final second). Its entries are the request names (no "Aggregated");
    they are merged here the way Locust merges them: counts and sums add up, response-time
    buckets merge, the load window runs from the earliest start to the latest request.
    Output tokens are the summed `total_content_length` (the locustfile reports a request's
    output tokens as its response_length); tokens/s uses the same window as requests/s.
    The percentiles and mean are Locust's (locust_p50_ms ..: every request, failed ones
    included, rounded as Locust rounds); run_locust adds the exact ones (p50_ms ..).
    """
    files = output_files(out_dir)
    if not files["json"].is_file():
        raise LocustRunError(f"Locust wrote no {files['json'].name}; see {files['log']}")
    entries = json.loads(files["json"].read_text())
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise LocustRunError(f"{files['json']} is not a list of stats entries")
    # The locustfile's "LLM" rows (TTFT, ITL, ...) are report rows, not requests.
    entries = [e for e in entries if e.get("method") != "LLM"]
    requests = sum(int(e.get("num_requests") or 0) for e in entries)
    failures = sum(int(e.get("num_failures") or 0) for e in entries)
    timed = requests - sum(int(e.get("num_none_requests") or 0) for e in entries)
    total_response_time = sum(float(e.get("total_response_time") or 0) for e in entries)
    output_tokens = sum(int(e.get("total_content_length") or 0) for e in entries)
    buckets: collections.Counter[float] = collections.Counter()
    for e in entries:
        for key, n in (e.get("response_times") or {}).items():
            buckets[float(key)] += int(n)
    mins = [
        float(e["min_response_time"]) for e in entries if e.get("min_response_time") is not None
    ]
    maxes = [float(e.get("max_response_time") or 0) for e in entries]
    starts = [float(e["start_time"]) for e in entries if e.get("start_time")]
    lasts = [float(e["last_request_timestamp"]) for e in entries if e.get("last_request_timestamp")]
    window = max(lasts) - min(starts) if starts and lasts else 0.0
    window = max(window, 0.0)
    return {
        "requests": requests,
        "failures": failures,
        "failure_ratio": failures / requests if requests else 1.0,
        "rps": requests / window if window > 0 else 0.0,
        "locust_p50_ms": percentile(buckets, timed, 0.50),
        "locust_p90_ms": percentile(buckets, timed, 0.90),
        "locust_p95_ms": percentile(buckets, timed, 0.95),
        "locust_p99_ms": percentile(buckets, timed, 0.99),
        "locust_mean_ms": total_response_time / timed if timed > 0 else 0.0,
        "min_ms": min(mins) if mins else 0.0,
        "max_ms": max(maxes) if maxes else 0.0,
        "output_tokens": output_tokens,
        "output_tokens_per_s": output_tokens / window if window > 0 else 0.0,
        "duration_s": window,
    }


def _progress_line(history_csv: Path, elapsed: float, total_s: int) -> str:
    """Elapsed time, plus the last stats Locust flushed to its history CSV (every ~5 s)."""
    line = f"progress: {elapsed:.0f} s elapsed of a {total_s} s run"
    row = _last_history_row(history_csv)
    if row and row.get("Total Request Count") not in (None, "", "0"):
        line += (
            f"; users {row.get('User Count', '?')}, requests {row['Total Request Count']},"
            f" failures {row.get('Total Failure Count', '?')},"
            f" {_float(row.get('Requests/s')):.1f} req/s now, p95 now {row.get('95%', '?')} ms"
        )
    return line


def run_locust(
    locustfile: str | os.PathLike,
    host: str,
    path: str,
    users: int,
    spawn_rate: float,
    duration: str,
    processes: int,
    out_dir: str | os.PathLike,
    max_new_tokens: int = 16,
    auth: str = "none",
    prompts: str | os.PathLike | None = None,
    timeout_s: float | None = None,
    progress_interval_s: float = 10.0,
    stop_timeout_s: int = 30,
    load: LoadOptions | None = None,
    correctness: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Runs Locust headless against `host` + `path` and returns the metrics.json dict.

    `processes`: 1 runs a single Locust process; N > 1 or -1 (one per core) runs a master and
    that many forked workers (`--processes`). At the end, requests in flight get up to
    `stop_timeout_s` to finish. `timeout_s` (default: duration + stop_timeout_s + 120 s) bounds
    the whole run. Ctrl-C (KeyboardInterrupt) or SIGTERM stops Locust's whole process group and is
    re-raised (SIGTERM as SystemExit(143)). `load` (components/load_options.py) turns on
    streaming, per-request targets and open-loop shapes; they reach the locustfile as
    DEPLOYTEST_* variables, which a locustfile of the user's own ignores. Such a locustfile
    also gets VERTEX_AI_ENDPOINT_HOST and VERTEX_AI_ENDPOINT_PATH (host and predict path).
    `correctness`: the correctness phase's metrics.json fields (correctness/phase.py,
    `summary_fields`), measured before the load.
    """
    load = load or LoadOptions()
    load.validate(processes)
    seconds = validate_inputs(
        locustfile,
        host,
        path,
        users,
        spawn_rate,
        duration,
        processes,
        max_new_tokens,
        auth,
        prompts,
        timeout_s,
        stop_timeout_s,
    )
    if load.planned_s() is not None:  # steps and sweep end on their own; -t is a bound
        seconds = max(seconds, int(load.planned_s()) + 5)
        duration = f"{seconds}s"
    if timeout_s is None:
        timeout_s = seconds + stop_timeout_s + 120.0
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = output_files(out)
    for stale in files.values():
        stale.unlink(missing_ok=True)

    env = {
        **os.environ,
        "DEPLOYTEST_PREDICT_HOST": host,
        "DEPLOYTEST_PREDICT_PATH": path,
        "DEPLOYTEST_MAX_NEW_TOKENS": str(max_new_tokens),
        "DEPLOYTEST_AUTH": auth,
        "DEPLOYTEST_LLM_STATS_FILE": str(files["llm"].resolve()),
        # What a locustfile written the usual Vertex AI way reads (see README).
        "VERTEX_AI_ENDPOINT_HOST": host,
        "VERTEX_AI_ENDPOINT_PATH": _plain_predict_path(path),
        "PYTHONUNBUFFERED": "1",
    }
    for stale in LoadOptions.ENV_KEYS:  # the caller's environment must not set the load
        env.pop(stale, None)
    env.update(load.environment())
    if prompts is not None:
        env["DEPLOYTEST_PROMPTS"] = str(Path(prompts).resolve())
    else:
        env.pop("DEPLOYTEST_PROMPTS", None)
    cmd = build_command(
        locustfile, host, users, spawn_rate, duration, processes, out, stop_timeout_s
    )
    print(f"{LINE_PREFIX}{' '.join(cmd[2:])}  (predict path {path})", flush=True)

    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    tail: collections.deque[str] = collections.deque(maxlen=60)

    def on_sigterm(signum, frame):
        raise _Terminated()

    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        previous_handler = signal.signal(signal.SIGTERM, on_sigterm)
    start = time.monotonic()
    proc: subprocess.Popen | None = None
    try:
        with files["log"].open("w", encoding="utf-8") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                bufsize=1,
                env=env,
                start_new_session=True,  # own process group: one killpg reaches every worker
            )

            def pump() -> None:
                assert proc is not None and proc.stdout is not None
                for line in proc.stdout:
                    log.write(line)
                    tail.append(line.rstrip("\n"))
                    print(f"{LINE_PREFIX}{line.rstrip()}", flush=True)

            reader = threading.Thread(target=pump, name="locust-output", daemon=True)
            reader.start()
            next_progress = start + progress_interval_s
            while True:
                try:
                    proc.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                if now - start > timeout_s:
                    _kill_group(proc)
                    raise LocustRunError(
                        f"Locust did not finish within {timeout_s:.0f} s; it was stopped"
                    )
                if progress_interval_s > 0 and now >= next_progress:
                    line = _progress_line(files["history_csv"], now - start, seconds)
                    print(f"{LINE_PREFIX}{line}", flush=True)
                    next_progress = now + progress_interval_s
            reader.join(timeout=10)
            _kill_group(proc)  # nothing of the group may outlive the run
    except _Terminated:
        if proc is not None:
            _kill_group(proc)
        print(f"{LINE_PREFIX}SIGTERM: stopped Locust", flush=True)
        raise SystemExit(128 + signal.SIGTERM) from None
    except BaseException:
        if proc is not None:
            _kill_group(proc)
        raise
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    wall_s = time.monotonic() - start

    if proc.returncode != 0:
        raise LocustRunError(
            f"Locust exited with code {proc.returncode}; last output:\n" + "\n".join(tail)
        )
    numbers = parse_results(out)
    summary = llm_metrics.read_summary(out)
    if summary is not None and summary.get("stages"):
        sweep_chart.write(files["sweep_chart"], summary["stages"], summary.get("knee_rps"))
    if summary is not None:  # Locust's size columns are bytes; tokens come from the summary
        numbers["output_tokens"] = llm_metrics.output_tokens(summary)
        window = numbers["duration_s"]
        numbers["output_tokens_per_s"] = numbers["output_tokens"] / window if window else 0.0
    else:
        numbers["output_tokens"], numbers["output_tokens_per_s"] = 0, 0.0
    numbers.update(llm_metrics.latency_fields(numbers, summary))
    metrics = LoadTestMetrics(
        **numbers,
        histograms=llm_metrics.histograms(summary),
        **llm_metrics.llm_fields(summary, numbers["requests"], numbers["duration_s"]),
        wall_s=wall_s,
        users=users,
        spawn_rate=float(spawn_rate),
        run_time=duration.strip(),
        processes=processes,
        max_new_tokens=max_new_tokens,
        host=host,
        path=path,
        locust_version=_locust_version(),
        started_at=started_at,
        **(correctness or {}),
    )
    files["metrics"].write_text(metrics.to_json())
    print(
        f"{LINE_PREFIX}done: {metrics.requests} requests, {metrics.failures} failures "
        f"({metrics.failure_ratio:.1%}), {metrics.rps:.1f} req/s, p50 {metrics.p50_ms:g} ms, "
        f"p95 {metrics.p95_ms:g} ms ({_SOURCE[metrics.latency_source]}), "
        f"{metrics.output_tokens_per_s:.1f} output tokens/s",
        flush=True,
    )
    print(f"{LINE_PREFIX}{llm_metrics.describe(metrics.to_dict())}", flush=True)
    return metrics.to_dict()
