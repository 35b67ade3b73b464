"""Load test for a model behind a Vertex AI endpoint (or anything with the same predict contract).

Usable on its own:

    locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:8080 \\
        --predict-path /v1/projects/p/locations/l/endpoints/1:streamRawPredict --stream \\
        -u 4 -r 2 -t 30s

Options (declared through Locust's `init_command_line_parser`, so Locust parses them;
each falls back to the environment variable in brackets, which `deploytest` sets):

    --predict-path      [DEPLOYTEST_PREDICT_PATH] default /predict (a bare model server)
    --api               [DEPLOYTEST_API] the serving API: deploytest (default),
                        openai-completions, openai-chat, vertex-vllm, tgi,
                        hf-inference-toolkit (loadtests/apis.py: body, answer, stream)
    --tokenizer         [DEPLOYTEST_TOKENIZER] the model's tokenizer.json (or its folder), to
                        count output tokens of answers that carry no count
    --max-new-tokens    [DEPLOYTEST_MAX_NEW_TOKENS] tokens requested per request (16)
    --workload          [DEPLOYTEST_WORKLOAD] a workload spec (a file, a NAME in
                        loadtests/workloads/, or JSON text; loadtests/workload.py): input and
                        output lengths in tokens, a dataset, a shared prefix, chat sessions;
                        needs --tokenizer (prompts are built with the model's own). Replaces
                        --prompts and --max-new-tokens
    --context-tokens    [DEPLOYTEST_CONTEXT_TOKENS] the model's context: dataset prompts that
                        do not fit are skipped, a synthetic spec that cannot fit is refused
    --stream            [DEPLOYTEST_STREAM] send "stream": true and read server-sent events:
                        measures TTFT, ITL and TPOT (use the endpoint's :streamRawPredict)
    --prompts           [DEPLOYTEST_PROMPTS] prompts file, one per line (default
                        prompts/default.txt beside this file, then the installed `loadtests`
                        package's copy, then a few built-in prompts: on Vertex this file may be
                        alone on /gcs)
    --auth none|google  [DEPLOYTEST_AUTH] google: `Authorization: Bearer` from
                        google.auth.default(), refreshed under a lock before expiry
    --request-timeout-s [DEPLOYTEST_REQUEST_TIMEOUT_S] per-request network timeout (120)
    --slo-ttft-ms, --slo-tpot-ms  per-request targets for goodput
    --load-shape users|rate|steps|sweep, --rate, --max-concurrency, --steps, --sweep-rates,
    --stage-s, --slo-p95-ms, --max-failure-ratio, --seed: see loadtests/shapes.py
    --llm-stats-file    [DEPLOYTEST_LLM_STATS_FILE] where the LLM metrics summary is written

The host is Locust's --host, else DEPLOYTEST_PREDICT_HOST.

Correctness counts, not only speed: a request is a failure unless the answer is HTTP 200 in
the API's shape (for our server a non-empty `predictions` list whose items all carry
`generated_text` (str) and `output_tokens` (int); loadtests/apis.py for the others), or,
streaming, a stream of parseable chunks with at least one token that ends as the API's
servers end it (`data: [DONE]`; loadtests/llm_stats.py names each failure's reason).

LLM metrics (loadtests/llm_stats.py): per request TTFT, ITL, TPOT, E2E, output tokens and
normalized latency go into histograms that every worker sends to the master with its stats
report (Locust's report_to_master / worker_report events); the master (or the only process)
writes their summary to --llm-stats-file when it quits. Locust's own report shows TTFT, TPOT
and output tokens per request as rows of type "LLM" under their own names (ITL, one value
per token, is in metrics.json only); these rows bypass the "Aggregated" row, so request
counts and requests/s are those of real requests. A request's size is its bytes again.

On the wire (loadtests/wire.py): a request's head is built once (per body length) and sent
on the connections of the user's own FastHttpSession (its TLS, proxy and timeouts), not through
`self.client.post`, whose per-request machinery was most of the load generator's CPU
(benchmarks/locust_client.py); the body is read as it arrives. The request event is fired
here, once per request. No redirects, cookies or compression: a predict endpoint needs none.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import random
import threading
import time
from pathlib import Path

from locust import FastHttpUser, constant, events, task
from locust.exception import CatchResponseError

from loadtests.apis import (
    API_NAMES,
    APIS,
    SOURCE_ANSWER,
    SOURCE_ESTIMATE,
    SOURCE_TOKENIZER,
    Api,
    check_api,
)
from loadtests.llm_stats import DEFAULT_API, LlmStats, Sample, StreamError, read_sse_stream
from loadtests.plan import SHAPES, check_plan
from loadtests.prompts import parse_prompts, read_prompts
from loadtests.shapes import (
    RUN,
    Arrivals,
    DeploytestShape,  # noqa: F401  (Locust picks the shape up from here)
    knee,
)
from loadtests.tokens import estimate, load_counter
from loadtests.wire import Wire, body_reader
from loadtests.workload import (
    Workload,
    WorkloadRequest,
    build_requests,
    load_workload,
    mean_output,
)
from loadtests.workload import check_api as check_workload_api

logger = logging.getLogger("deploytest.locustfile")

REQUEST_NAME = "predict"
TOKEN_REFRESH_MARGIN = datetime.timedelta(minutes=5)
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"

_BUILTIN_PROMPTS = (
    "Write a haiku about autumn leaves.",
    "Explain what a load balancer does in one sentence.",
    "What is the capital of Australia?",
    "Why is the sky blue?",
    "Tell me a joke about programmers.",
)


def load_prompts(explicit: str = "") -> list[str]:
    """The prompts from `explicit`, else the default file beside this one or in the package."""
    explicit = (explicit or "").strip()
    if explicit:
        if not Path(explicit).is_file():
            raise FileNotFoundError(f"--prompts {explicit}: no such file")
        return read_prompts(explicit)
    beside = Path(__file__).resolve().parent / "prompts" / "default.txt"
    if beside.is_file():
        return read_prompts(beside)
    try:  # the installed package's copy (this file may have been copied alone, e.g. to GCS)
        from importlib.resources import files

        packaged = files("loadtests") / "prompts" / "default.txt"
        if packaged.is_file():
            return parse_prompts(packaged.read_text(encoding="utf-8"), str(packaged))
    except (ImportError, ModuleNotFoundError, OSError):
        pass
    logger.warning("no prompts file found; using %d built-in prompts", len(_BUILTIN_PROMPTS))
    return list(_BUILTIN_PROMPTS)


PREDICT_HOST = os.environ.get("DEPLOYTEST_PREDICT_HOST", "").strip() or None
# Set in the init event from the parsed options (every process runs it, workers included).
PROMPTS: list[str] = list(_BUILTIN_PROMPTS)
BODIES: list[str] = []  # one encoded request per prompt: no JSON encoding per request
INPUT_TOKENS: list[int | None] = []  # each body's prompt tokens (None: no tokenizer)
WORKLOAD: Workload | None = None  # --workload, set in the init event
REQUESTS: list[WorkloadRequest] = []  # the workload's requests (sessions: their turns)
OPTIONS = None
API: Api = DEFAULT_API  # the serving API (--api), set in the init event
COUNT_TOKENS = None  # the model's tokenizer (--tokenizer): text -> tokens, or None


def request_bodies(
    prompts: list[str], max_new_tokens: int, stream: bool, api: Api = DEFAULT_API
) -> list[str]:
    """The request body for each prompt in `api`'s shape, JSON-encoded once."""
    return [json.dumps(api.body(prompt, max_new_tokens, stream)) for prompt in prompts]


def workload_bodies(
    requests: list[WorkloadRequest], stream: bool, exact: bool, api: Api = DEFAULT_API
) -> list[str]:
    """One body per single-turn workload request, each with its own output length."""
    return [json.dumps(api.body(r.prompt, r.turns[0].max_tokens, stream, exact)) for r in requests]


def answer_tokens(api: Api, payload: object, count_tokens=None) -> tuple[int, str]:
    """Checks a whole (non-streamed) answer; (its output tokens, how they were counted).

    AnswerError (a ValueError) says what is wrong, in a short fixed message so Locust groups
    failures into a few rows. The count is the answer's own, else the tokenizer's, else an
    estimate (loadtests/apis.py)."""
    count, source, _ = answer_text_tokens(api, payload, count_tokens)
    return count, source


def answer_text_tokens(api: Api, payload: object, count_tokens=None) -> tuple[int, str, str]:
    """`answer_tokens` plus the answer's text."""
    text, count = api.answer(payload)
    if count is not None:
        return count, SOURCE_ANSWER, text
    if count_tokens is not None:
        return count_tokens(text), SOURCE_TOKENIZER, text
    return estimate(text), SOURCE_ESTIMATE, text


def _error_message(read, limit: int = 8192) -> str:
    """ ": <the error's message>" from an error answer's JSON (first 60 characters, so a
    wrong --api shows why in one Locust failure row), or "" when there is none."""
    body = b""
    try:
        while len(body) < limit and (piece := read()):
            body += piece
        payload = json.loads(body)
    except Exception:  # not JSON, cut, or gone: the status alone says it
        return ""
    error = payload.get("error", payload) if isinstance(payload, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    if not isinstance(error, str) and isinstance(payload, dict):
        error = payload.get("message")  # vLLM's ErrorResponse
    return f": {' '.join(error.split())[:60]}" if isinstance(error, str) and error else ""


class BearerToken:
    """One google-auth credentials object per process, refreshed under a lock before expiry."""

    def __init__(self, credentials, request, margin: datetime.timedelta = TOKEN_REFRESH_MARGIN):
        self._credentials = credentials
        self._request = request
        self._margin = margin
        self._lock = threading.Lock()  # a gevent lock once Locust has monkey-patched threading

    def _needs_refresh(self) -> bool:
        creds = self._credentials
        if not getattr(creds, "token", None):
            return True
        expiry = getattr(creds, "expiry", None)
        if expiry is None:
            return False
        if expiry.tzinfo is not None:  # google-auth uses naive UTC; accept aware too
            expiry = expiry.astimezone(datetime.UTC).replace(tzinfo=None)
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        return expiry - now < self._margin

    def header(self) -> str:
        if self._needs_refresh():
            with self._lock:
                if self._needs_refresh():  # another greenlet may have refreshed meanwhile
                    self._credentials.refresh(self._request)
                    logger.info("refreshed access token (expires %s)", self._credentials.expiry)
        return f"Bearer {self._credentials.token}"


_token: BearerToken | None = None


def _google_token() -> BearerToken:
    import google.auth
    import google.auth.transport.requests

    credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    return BearerToken(credentials, google.auth.transport.requests.Request())


def _positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise ValueError(f"must be > 0, got {text}")
        return value

    parse.__name__ = f"positive {kind.__name__}"  # argparse names the type in its error
    return parse


@events.init_command_line_parser.add_listener
def _add_options(parser):
    """Our options, on Locust's own parser; each falls back to a DEPLOYTEST_* variable."""

    def add(flag, env, **kwargs):
        parser.add_argument(flag, env_var=f"DEPLOYTEST_{env}", **kwargs)

    add("--predict-path", "PREDICT_PATH", default="/predict", help="predict path")
    add("--api", "API", choices=API_NAMES, default="deploytest", help="serving API")
    add("--tokenizer", "TOKENIZER", default="", help="tokenizer.json (or its folder)")
    add("--max-new-tokens", "MAX_NEW_TOKENS", type=_positive(int), default=16)
    add("--workload", "WORKLOAD", default="", help="workload spec: file, NAME or JSON")
    add("--context-tokens", "CONTEXT_TOKENS", type=_positive(int), default=None)
    add("--stream", "STREAM", action="store_true", default=False, help="stream tokens (SSE)")
    add("--prompts", "PROMPTS", default="", help="prompts file, one per line")
    add("--auth", "AUTH", choices=("none", "google"), default="none")
    add("--request-timeout-s", "REQUEST_TIMEOUT_S", type=_positive(float), default=120.0)
    add("--slo-ttft-ms", "SLO_TTFT_MS", type=_positive(float), default=None)
    add("--slo-tpot-ms", "SLO_TPOT_MS", type=_positive(float), default=None)
    add("--slo-p95-ms", "SLO_P95_MS", type=_positive(float), default=None)
    add("--max-failure-ratio", "MAX_FAILURE_RATIO", type=float, default=0.01)
    add("--load-shape", "LOAD_SHAPE", choices=SHAPES, default="users")
    add("--rate", "RATE", type=_positive(float), default=None, help="arrivals per second")
    add("--max-concurrency", "MAX_CONCURRENCY", type=_positive(int), default=64)
    add("--steps", "STEPS", default="", help="DURATION:RATE stages, e.g. 10s:5,10s:10")
    add("--sweep-rates", "SWEEP_RATES", default="1,2,4,8,16,32,64")
    add("--stage-s", "STAGE_S", type=_positive(float), default=10.0)
    add("--seed", "SEED", type=int, default=None, help="seed of the arrival schedule")
    add("--llm-stats-file", "LLM_STATS_FILE", default="", help="write the LLM summary here")


def _check_options(o) -> None:
    if not o.predict_path.startswith("/"):
        o.predict_path = "/" + o.predict_path
    check_api(o.api, o.stream)
    slos = (o.slo_p95_ms, o.slo_ttft_ms, o.slo_tpot_ms)
    check_plan(o.load_shape, o.rate, o.steps, o.sweep_rates, slos, getattr(o, "processes", 1))


def _use_environment_network(host_url: str) -> None:
    """Honour the standard proxy and CA variables for an https host, as `requests` does
    (geventhttpclient, under FastHttpUser, reads neither): HTTPS_PROXY/NO_PROXY pick a
    CONNECT proxy (a company proxy, or the embedded Vertex AI's, emulator/envfile.py), and
    the certificate is verified, against REQUESTS_CA_BUNDLE or SSL_CERT_FILE when set
    (Locust's default skips verification; a bearer token must not go to an unverified host).
    A plain-http host (a model server on loopback) is reached directly."""
    import urllib.request
    from urllib.parse import urlsplit

    target = urlsplit(host_url)
    if target.scheme != "https" or not target.hostname:
        return
    PredictUser.insecure = False
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    if bundle:
        import gevent.ssl

        def verified_context(cafile=None):  # geventhttpclient passes its own `cafile`
            return gevent.ssl.create_default_context(cafile=bundle)

        PredictUser.ssl_context_factory = staticmethod(verified_context)
    proxy = urllib.request.getproxies().get("https")
    if proxy and not urllib.request.proxy_bypass(target.hostname):
        parsed = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        PredictUser.proxy_host, PredictUser.proxy_port = parsed.hostname, parsed.port or 80
        logger.info("through the proxy %s:%s", PredictUser.proxy_host, PredictUser.proxy_port)


def _set_requests(o) -> None:
    """The bodies to send (and their prompts' tokens): a workload's, else the prompts
    file's with --max-new-tokens; the same in every process (the workload's seed)."""
    global PROMPTS, WORKLOAD
    if not o.workload:
        WORKLOAD = None
        REQUESTS[:] = []
        PROMPTS = load_prompts(o.prompts)
        BODIES[:] = request_bodies(PROMPTS, o.max_new_tokens, o.stream, API)
        INPUT_TOKENS[:] = [COUNT_TOKENS(p) if COUNT_TOKENS else None for p in PROMPTS]
        return
    if not o.tokenizer:
        raise ValueError(
            "--workload builds its prompts with the model's tokenizer: give "
            "--tokenizer (the model's tokenizer.json or its folder)"
        )
    WORKLOAD = load_workload(o.workload)
    check_workload_api(WORKLOAD, o.api)
    built = build_requests(WORKLOAD, o.tokenizer, o.context_tokens, default_output=o.max_new_tokens)
    for note in built.notes:
        logger.warning("workload: %s", note)
    REQUESTS[:] = built.requests
    PROMPTS = [r.prompt for r in built.requests]
    exact = WORKLOAD.exact_output and API.exact_output
    if WORKLOAD.turns > 1:
        BODIES[:] = []  # a session's body is built per turn, with its history
    else:
        BODIES[:] = workload_bodies(built.requests, o.stream, exact, API)
    INPUT_TOKENS[:] = [r.input_tokens for r in built.requests]


@events.init.add_listener
def _on_init(environment, **_kwargs):
    """Runs once per process (master and every forked worker): options, auth, fail fast."""
    global _token, PROMPTS, OPTIONS, API, COUNT_TOKENS, WORKLOAD
    o = environment.parsed_options
    if o is None:  # a library user without a parser: nothing of ours to set up
        return
    _check_options(o)
    OPTIONS = o
    API = APIS[o.api]
    COUNT_TOKENS = load_counter(o.tokenizer) if o.tokenizer else None
    _set_requests(o)
    RUN.options = o
    RUN.arrivals = Arrivals(o.seed)
    RUN.total = LlmStats(o.slo_ttft_ms, o.slo_tpot_ms)
    RUN.stage = LlmStats(o.slo_ttft_ms, o.slo_tpot_ms)
    RUN.stages = []
    PredictUser.network_timeout = PredictUser.connection_timeout = o.request_timeout_s
    _use_environment_network(environment.host or PREDICT_HOST or "")
    if o.auth == "google":
        try:
            _token = _google_token()
            _token.header()  # first token now: bad credentials stop the run before any load
        except Exception as exc:
            message = f"DEPLOYTEST_AUTH=google: cannot get an access token: {exc}"
            raise RuntimeError(message) from exc
    else:
        _token = None
    logger.info(
        "predict %s%s, api=%s, tokenizer=%s, %s, stream=%s, shape=%s, %d prompts, auth=%s",
        environment.host or PREDICT_HOST or "<--host>",
        o.predict_path,
        o.api,
        o.tokenizer or "none",
        f"workload {WORKLOAD.describe()}" if WORKLOAD else f"max_new_tokens={o.max_new_tokens}",
        o.stream,
        o.load_shape,
        len(PROMPTS),
        o.auth,
    )


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs):
    RUN.cpu_started = time.process_time()


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs):
    """No arrivals after the stop; those due but never sent count as dropped."""
    RUN.arrivals.set_rate(0)
    RUN.stopped_at = time.perf_counter()


@events.report_to_master.add_listener
def _on_report_to_master(client_id, data, **_kwargs):
    """A worker ships its LLM histograms with each stats report, then starts afresh."""
    cpu = time.process_time()
    part = RUN.total.to_dict()
    part["cpu_s"] = cpu - (RUN.cpu_started if RUN.cpu_reported is None else RUN.cpu_reported)
    RUN.cpu_reported = cpu
    data["deploytest_llm"] = part
    RUN.total = LlmStats(RUN.total.slo_ttft_ms, RUN.total.slo_tpot_ms)


@events.worker_report.add_listener
def _on_worker_report(client_id, data, **_kwargs):
    part = data.get("deploytest_llm")
    if part:
        RUN.total.merge(part)
        RUN.worker_cpu_s += float(part.get("cpu_s", 0.0))


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs):
    """The master (or the only process) writes the LLM summary: what metrics.json reads."""
    from locust.runners import WorkerRunner

    o = OPTIONS
    if o is None or not o.llm_stats_file or isinstance(environment.runner, WorkerRunner):
        return
    arrivals = RUN.arrivals
    stopped = RUN.stopped_at or time.perf_counter()
    window = stopped - RUN.first_stage_started if RUN.first_stage_started else 0.0
    summary = RUN.total.summary()
    own_cpu = time.process_time() - RUN.cpu_started
    summary.update(
        api=o.api,
        stream=o.stream,
        load_shape=o.load_shape,
        rate=o.rate,
        max_concurrency=o.max_concurrency if o.load_shape != "users" else None,
        arrivals={
            "sent": arrivals.sent,
            "delayed": arrivals.delayed,
            "dropped": arrivals.dropped,
            "window_s": window,
            "rate": arrivals.sent / window if window > 0 else None,
        },
        stages=RUN.stages,
        knee_rps=knee(RUN.stages) if o.load_shape == "sweep" else None,
        workload=WORKLOAD.to_spec() if WORKLOAD else None,
        workload_id=WORKLOAD.identity() if WORKLOAD else None,
        workload_requests=len(REQUESTS) if WORKLOAD else None,
        workload_output_tokens=mean_output(REQUESTS) if WORKLOAD else None,
        client_cpu_s=own_cpu + RUN.worker_cpu_s,
        # value -> count of every metric (rounded as llm_stats.Histogram keeps them), so a
        # reader can re-bucket them, e.g. onto a server's own Prometheus buckets
        histograms={name: h.to_dict() for name, h in RUN.total.hist.items()},
    )
    Path(o.llm_stats_file).write_text(json.dumps(summary, indent=2))


def _log_llm(environment, sample: Sample) -> None:
    """Rows of type LLM in Locust's report, logged past the Aggregated row (see docstring).

    One row per request metric; ITL (one value per token) is in metrics.json only: a report
    row would cost a Locust log call per token.
    """
    get = environment.stats.get
    if sample.ttft_ms is not None:
        get("TTFT (ms)", "LLM").log(sample.ttft_ms, 0)
        if (tpot := sample.tpot_ms) is not None:
            get("TPOT (ms)", "LLM").log(tpot, 0)
    # A count, shown in the time columns: the row's name says so.
    get("output tokens (count, not ms)", "LLM").log(sample.output_tokens, 0)


class PredictUser(FastHttpUser):
    """One prompt per request: back to back (closed loop), or at Poisson arrival times."""

    host = PREDICT_HOST
    wait_time = constant(0)
    network_timeout = 120.0
    connection_timeout = 120.0
    _wire: Wire | None = None  # this user's predict URL on its session's connections
    _session: dict | None = None  # a workload's chat session in progress (sessions only)

    def _session_body(self, stream: bool) -> tuple[str, int]:
        """The next turn of this user's chat session (a new session after the last turn):
        the history so far plus the turn's message; (body, the history's tokens)."""
        s = self._session
        if s is None or s["turn"] >= len(s["request"].turns):
            request = random.choice(REQUESTS)
            s = self._session = {
                "request": request,
                "turn": 0,
                "messages": [],
                "tokens": request.prefix_tokens,
            }
        request, turn = s["request"], s["request"].turns[s["turn"]]
        content = (request.prefix if s["turn"] == 0 else "") + turn.text
        s["messages"].append({"role": "user", "content": content})
        s["tokens"] += turn.input_tokens
        exact = WORKLOAD.exact_output and API.exact_output
        body = API.messages_body(s["messages"], turn.max_tokens, stream, exact)
        return json.dumps(body), s["tokens"]

    def _session_answered(self, sample: Sample) -> None:
        """The answer joins the history the next turn sends."""
        s = self._session
        text = sample.text or ""
        s["messages"].append({"role": "assistant", "content": text})
        s["tokens"] += COUNT_TOKENS(text) if COUNT_TOKENS else sample.output_tokens
        s["turn"] += 1

    def _fail(self, reason: str) -> None:
        for stats in RUN.collectors():
            stats.failed()
        self.environment.events.request.fire(
            request_type="POST",
            name=REQUEST_NAME,
            response_time=0,
            response_length=0,
            exception=RuntimeError(reason),
            context={},
        )

    @task
    def predict(self) -> None:
        o = OPTIONS
        if RUN.arrivals.active:  # open loop: wait for this user's next arrival
            due, late = RUN.arrivals.claim()
            if not RUN.arrivals.wait(due):
                return  # the rate changed while waiting: claim on the new schedule
            RUN.arrivals.send(late)
            for stats in RUN.collectors():
                stats.counts["sent"] += 1
                stats.counts["delayed"] += late
        elif o is not None and o.load_shape != "users":
            time.sleep(0.05)  # between stages, or after the last: no arrivals
            return
        stream = bool(o and o.stream)
        sessions = WORKLOAD is not None and WORKLOAD.turns > 1
        if not sessions and len(BODIES) != len(PROMPTS):  # no init event ran (a library user)
            BODIES[:] = request_bodies(PROMPTS, o.max_new_tokens if o else 16, stream, API)
            INPUT_TOKENS[:] = [None] * len(BODIES)
        path = o.predict_path if o else "/predict"
        authorization = None
        if _token is not None:
            try:
                authorization = _token.header()
            except Exception as exc:  # a failed refresh counts as a failed request, then backs off
                self._fail(f"token refresh failed ({type(exc).__name__})")
                time.sleep(1)
                return
        wire = self._wire
        if wire is None or wire.path != path:
            wire = self._wire = Wire(self.client, path)
        if sessions:
            body, input_tokens = self._session_body(stream)
        else:
            i = random.randrange(len(BODIES))
            body, input_tokens = BODIES[i], INPUT_TOKENS[i] if i < len(INPUT_TOKENS) else None
        data = wire.request_bytes(body, authorization)
        start_time = time.time()
        started = time.perf_counter()
        response = None
        try:
            response = wire.send(data)
            reason, sample = self._read(response, started, stream, keep_text=sessions)
        except Exception as exc:  # no answer at all: refused, reset, timed out
            reason, sample = f"no response ({type(exc).__name__})", None
        finally:
            if response is not None:
                response.release()  # closes the connection unless the body was read to its end
        if sample is None:
            self._session = None  # a broken conversation starts afresh
            for stats in RUN.collectors():
                stats.failed()
            elapsed = (time.perf_counter() - started) * 1000
            self._report(start_time, elapsed, 0, response, CatchResponseError(reason))
            return
        sample.input_tokens = input_tokens
        if sessions:
            self._session_answered(sample)
        for stats in RUN.collectors():
            stats.add(sample)
        _log_llm(self.environment, sample)
        self._report(start_time, sample.e2e_ms, sample.bytes, response, None)

    def _report(self, start_time, response_time, length, response, exception) -> None:
        """Locust's request event, with what FastHttpSession would have given it."""
        self.environment.events.request.fire(
            request_type="POST",
            name=REQUEST_NAME,
            response_time=response_time,
            response_length=length,
            exception=exception,
            context=self.context(),
            start_time=start_time,
            url=self._wire.url,
            response=response,
        )

    @staticmethod
    def _read(
        response, started: float, stream: bool, keep_text: bool = False
    ) -> tuple[str, None] | tuple[None, Sample]:
        """(failure reason, None) or (None, the request's sample) from an HTTP answer; network
        errors propagate."""
        read = body_reader(response)
        if response.status_code != 200:
            return f"HTTP {response.status_code}{_error_message(read)}", None
        if stream:
            try:
                sample = read_sse_stream(
                    read, started, api=API, count_tokens=COUNT_TOKENS, keep_text=keep_text
                )
                return None, sample
            except StreamError as exc:
                return str(exc), None
            except Exception as exc:  # timeouts, resets: the stream broke off
                return f"stream broken ({type(exc).__name__})", None
        try:
            content = b"".join(iter(read, b""))
            tokens, source, text = answer_text_tokens(API, json.loads(content), COUNT_TOKENS)
        except json.JSONDecodeError:
            return "body is not JSON", None
        except ValueError as exc:
            return str(exc), None
        except Exception as exc:
            return f"body unreadable ({type(exc).__name__})", None
        e2e = (time.perf_counter() - started) * 1000
        return None, Sample(
            e2e_ms=e2e,
            output_tokens=tokens,
            bytes=len(content),
            token_source=source,
            text=text if keep_text else None,
        )
