"""Load test for a model behind a Vertex AI endpoint (or anything with the same predict contract).

Usable on its own:

    DEPLOYTEST_PREDICT_HOST=http://127.0.0.1:8080 \\
    DEPLOYTEST_PREDICT_PATH=/v1/projects/p/locations/l/endpoints/1:predict \\
        locust -f loadtests/locustfile.py --headless -u 4 -r 2 -t 30s

Environment (read once at import; worker processes forked by `--processes` inherit it):

    DEPLOYTEST_PREDICT_HOST     base URL, e.g. https://us-central1-aiplatform.googleapis.com or
                                http://127.0.0.1:PORT (the emulator). Locust's --host wins.
    DEPLOYTEST_PREDICT_PATH     predict path, e.g. /v1/projects/P/locations/L/endpoints/E:predict
                                (default /predict: a bare model server's AIP_PREDICT_ROUTE).
    DEPLOYTEST_MAX_NEW_TOKENS   parameters.max_new_tokens sent with every request (default 16).
    DEPLOYTEST_PROMPTS          prompts file, one prompt per line (default prompts/default.txt
                                next to this file, then the installed `loadtests` package's
                                copy, then a small built-in set: on Vertex this file may be
                                alone on /gcs).
    DEPLOYTEST_AUTH             none (default) or google: `Authorization: Bearer <token>` from
                                google.auth.default(), one credentials object per process,
                                refreshed under a lock when less than 5 minutes remain.
    DEPLOYTEST_REQUEST_TIMEOUT_S  per-request network timeout in seconds (default 120).

Correctness counts, not only speed: a request is a failure unless the answer is HTTP 200 with a
non-empty `predictions` list whose items all carry `generated_text` (str) and `output_tokens` (int).

Output tokens: each successful request reports the sum of its `output_tokens` as the request's
`response_length` (failures report 0). Locust keeps that in StatsEntry.total_content_length, which
is part of the stats every worker sends to the master and is summed by the master, so it survives
`--processes`/distributed runs and lands in the JSON stats (`total_content_length`) and the CSV
(`Average Content Size` = tokens per request). A separate named pseudo-request would also
aggregate, but it would inflate request counts, requests/s and the latency percentiles of the
"Aggregated" row. Consequence: the "size" columns of this test's report are output tokens, not
bytes. Output tokens/s = total_content_length / elapsed (see components/locust_run.py).
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


def _env_int(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def parse_prompts(text: str, source: str) -> list[str]:
    """One prompt per line; blank lines and lines starting with '#' are skipped."""
    prompts = [line.strip() for line in text.splitlines()]
    prompts = [p for p in prompts if p and not p.startswith("#")]
    if not prompts:
        raise ValueError(f"prompts file {source} holds no prompts")
    return prompts


def read_prompts(path: str | os.PathLike) -> list[str]:
    return parse_prompts(Path(path).read_text(encoding="utf-8"), str(path))


def load_prompts() -> list[str]:
    explicit = os.environ.get("DEPLOYTEST_PROMPTS", "").strip()
    if explicit:
        if not Path(explicit).is_file():
            raise FileNotFoundError(f"DEPLOYTEST_PROMPTS={explicit}: no such file")
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
PREDICT_PATH = os.environ.get("DEPLOYTEST_PREDICT_PATH", "").strip() or "/predict"
if not PREDICT_PATH.startswith("/"):
    PREDICT_PATH = "/" + PREDICT_PATH
MAX_NEW_TOKENS = _env_int("DEPLOYTEST_MAX_NEW_TOKENS", 16, minimum=1)
AUTH_MODE = os.environ.get("DEPLOYTEST_AUTH", "").strip().lower() or "none"
if AUTH_MODE not in ("none", "google"):
    raise ValueError(f"DEPLOYTEST_AUTH must be 'none' or 'google', got {AUTH_MODE!r}")
REQUEST_TIMEOUT_S = _env_float("DEPLOYTEST_REQUEST_TIMEOUT_S", 120.0)
PROMPTS = load_prompts()


def count_output_tokens(payload: object) -> int:
    """Checks a predict answer and returns its output tokens; ValueError says what is wrong.

    Messages are short and fixed so Locust groups failures into a few rows.
    """
    if not isinstance(payload, dict):
        raise ValueError("body is not a JSON object")
    predictions = payload.get("predictions")
    if not isinstance(predictions, list) or not predictions:
        raise ValueError("no predictions list (or it is empty)")
    tokens = 0
    for item in predictions:
        if not isinstance(item, dict):
            raise ValueError("a prediction is not an object")
        if not isinstance(item.get("generated_text"), str):
            raise ValueError("a prediction lacks generated_text (str)")
        count = item.get("output_tokens")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError("a prediction lacks output_tokens (int)")
        tokens += count
    return tokens


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


@events.init.add_listener
def _on_init(environment, **_kwargs):
    """Runs once per process (master and every forked worker): set up auth, fail fast."""
    global _token
    if AUTH_MODE == "google":
        try:
            _token = _google_token()
            _token.header()  # first token now: bad credentials stop the run before any load
        except Exception as exc:
            message = f"DEPLOYTEST_AUTH=google: cannot get an access token: {exc}"
            raise RuntimeError(message) from exc
    else:
        _token = None
    logger.info(
        "predict %s%s, max_new_tokens=%d, %d prompts, auth=%s",
        environment.host or PREDICT_HOST or "<--host>",
        PREDICT_PATH,
        MAX_NEW_TOKENS,
        len(PROMPTS),
        AUTH_MODE,
    )


class PredictUser(FastHttpUser):
    """Sends one prompt per request, back to back (closed loop: load = number of users)."""

    host = PREDICT_HOST
    wait_time = constant(0)
    network_timeout = REQUEST_TIMEOUT_S
    connection_timeout = REQUEST_TIMEOUT_S

    @task
    def predict(self) -> None:
        body = {
            "instances": [{"text": random.choice(PROMPTS)}],
            "parameters": {"max_new_tokens": MAX_NEW_TOKENS},
        }
        headers = {"Content-Type": "application/json"}
        if _token is not None:
            try:
                headers["Authorization"] = _token.header()
            except Exception as exc:  # a failed refresh counts as a failed request, then backs off
                self.environment.events.request.fire(
                    request_type="POST",
                    name=REQUEST_NAME,
                    response_time=0,
                    response_length=0,
                    exception=RuntimeError(f"token refresh failed ({type(exc).__name__})"),
                    context={},
                )
                time.sleep(1)  # gevent-patched: yields to the other users
                return
        with self.client.post(
            PREDICT_PATH,
            data=json.dumps(body),
            headers=headers,
            name=REQUEST_NAME,
            catch_response=True,
        ) as response:
            # response_length carries output tokens (see the module docstring); 0 unless correct.
            response.request_meta["response_length"] = 0
            if not response.status_code:  # no HTTP answer at all
                error = response.request_meta.get("exception")
                response.failure(f"no response ({type(error).__name__})")
                return
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
            try:
                tokens = count_output_tokens(json.loads(response.content or b""))
            except json.JSONDecodeError:
                response.failure("body is not JSON")
                return
            except ValueError as exc:
                response.failure(str(exc))
                return
            response.request_meta["response_length"] = tokens
            response.success()
