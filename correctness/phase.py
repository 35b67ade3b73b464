"""The correctness phase, run before the load: the fixed prompts (and the team's
expectations) sent one at a time with deterministic decoding, every answer judged.

Its requests are not the load's: they go through their own HTTP client and are not counted
in Locust's figures. The result is `correctness.json` in the load test's folder, and its
ratios join metrics.json (schema 4: `parity_ratio`, `expect_pass_ratio`), where the gate
checks them.
"""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from correctness.expectations import Expectation
from correctness.files import InputError, TooBig, local_model_dir
from correctness.reference import NoChatTemplate, ReferenceAnswers, compare
from loadtests.prompts import read_prompts

RESULT_NAME = "correctness.json"
PROMPTS_FILE = Path(__file__).with_name("prompts.txt")
DEFAULT_TOKENS = 16  # K: tokens compared per prompt, and the phase's output budget
DEFAULT_REFERENCE_MAX_MB = 2000  # a transformers model this big still loads on the runner
REQUEST_TIMEOUT_S = 60.0
NONE = "none"  # --reference-model none: no parity check


def fixed_prompts() -> list[str]:
    """The phase's own prompts (prompts.txt beside this module)."""
    return read_prompts(PROMPTS_FILE)


@dataclass(frozen=True)
class Plan:
    """What the phase does.

    reference_model: the model artifact to compare with (a folder or gs://), "" or "none"
        for no parity check.
    expectations: the team's checks (`--expect FILE`, already parsed: bad lines were refused
        before anything was created).
    tokens: K, the tokens compared per prompt and asked for per request.
    reference_max_mb: the largest reference model loaded on this machine; a bigger one is
        reported as not measured rather than loaded.
    answers: the reference's answers computed ahead (`prepare_reference`, the pipeline's
        reference task); None: computed here from `reference_model`.
    skipped: why parity is not measured, when that was found ahead ("": it is).
    """

    reference_model: str = ""
    expectations: tuple[Expectation, ...] = ()
    tokens: int = DEFAULT_TOKENS
    reference_max_mb: float = DEFAULT_REFERENCE_MAX_MB
    answers: ReferenceAnswers | None = None
    skipped: str = ""

    @property
    def parity(self) -> bool:
        return bool(self.reference_model) and self.reference_model != NONE

    @property
    def active(self) -> bool:
        return self.parity or bool(self.expectations)


class Sender:
    """POSTs one request body to the endpoint and returns the answer's (text, tokens)."""

    def __init__(self, url: str, api, auth: str):
        import httpx

        self.url, self.api = url, api
        headers = {"Content-Type": "application/json"}
        if auth == "google":
            import google.auth
            import google.auth.transport.requests

            creds, _ = google.auth.default(
                scopes=["https://www.googleapis.com/auth/cloud-platform"]
            )
            creds.refresh(google.auth.transport.requests.Request())
            headers["Authorization"] = f"Bearer {creds.token}"
        # As the load's requests (loadtests/locustfile.py): the emulator's CA from these
        # variables, and HTTPS_PROXY / NO_PROXY honoured (trust_env), so that with the
        # emulator's env file an --endpoint on *.googleapis.com reaches the emulator.
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
        verify: Any = ssl.create_default_context(cafile=bundle) if bundle else True
        self.client = httpx.Client(
            headers=headers, timeout=REQUEST_TIMEOUT_S, verify=verify, trust_env=True
        )

    def send(self, prompt: str, max_tokens: int) -> tuple[str, int | None]:
        """The answer to `prompt`; RuntimeError naming the HTTP status or the broken shape."""
        from loadtests.apis import AnswerError

        response = self.client.post(self.url, json=self.api.greedy_body(prompt, max_tokens))
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
        try:
            return self.api.answer(response.json())
        except (AnswerError, ValueError) as exc:
            raise RuntimeError(f"answer breaks the {self.api.name} contract: {exc}") from None

    def close(self) -> None:
        self.client.close()


def run_phase(
    url: str,
    api_name: str,
    auth: str,
    plan: Plan,
    out_dir: str | os.PathLike,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the phase against `url` (the non-streaming predict URL) and write correctness.json;
    return its summary (the metrics.json fields). Errors of single requests are results
    (a prompt that failed does not match); nothing here raises for a wrong model."""
    from loadtests.apis import get_api

    api = get_api(api_name)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result: dict[str, Any] = {
        "api": api_name,
        "tokens_compared": plan.tokens,
        "deterministic": api.deterministic,
        "note": "" if api.deterministic else (
            f"{api_name} cannot decode deterministically (sampling is forced on): parity is "
            "not judged; expectations are, on one sampled answer each"
        ),
    }  # fmt: skip
    sender = Sender(url, api, auth)
    try:
        if plan.parity:
            result["parity"] = _parity(sender, api, plan, Path(out_dir), log)
        if plan.expectations:
            result["expectations"] = _expectations(sender, plan, log)
    finally:
        sender.close()
    result["seconds"] = round(time.monotonic() - started, 3)
    Path(out_dir, RESULT_NAME).write_text(json.dumps(result, indent=2) + "\n")
    return summary_fields(result)


def prepare_reference(
    plan: Plan, api_name: str, work_dir: str | os.PathLike
) -> ReferenceAnswers | str:
    """The reference's greedy answers to the fixed prompts (float32, through the chat
    template for openai-chat), or why parity is not measured (an API that cannot decode
    greedily, a model over the size limit). InputError when the model is not there or
    cannot be loaded. Loads the model: slow (torch), so the pipeline runs it beside the
    deploy."""
    from loadtests.apis import get_api

    if not get_api(api_name).deterministic:
        return "the API cannot decode greedily"
    try:
        model_dir = local_model_dir(
            plan.reference_model, Path(work_dir) / ".correctness", int(plan.reference_max_mb * 1e6)
        )
    except TooBig as exc:
        return str(exc)
    try:
        return ReferenceAnswers.compute(
            model_dir, plan.reference_model, fixed_prompts(), plan.tokens,
            api_name == "openai-chat",
        )  # fmt: skip
    except NoChatTemplate as exc:
        return str(exc)
    except (OSError, ValueError) as exc:  # transformers' errors for a folder it cannot load
        raise InputError(
            f"reference model {plan.reference_model}: cannot be loaded ({exc})"
        ) from None


def _parity(sender: Sender, api, plan: Plan, out_dir: Path, log) -> dict[str, Any]:
    try:
        ref = plan.answers or plan.skipped or prepare_reference(plan, api.name, out_dir)
    except InputError as exc:
        ref = str(exc)
    if isinstance(ref, str):
        log(f"[correctness] parity not measured: {ref}")
        return {"reference": plan.reference_model, "skipped": ref}
    rows = []
    for prompt, expected in ref.answers.items():
        try:
            text, _ = sender.send(prompt, ref.tokens)
            error = ""
        except Exception as exc:  # a failed request is a prompt that did not match
            text, error = "", str(exc)
        parity = compare(ref.tokenize(expected), ref.tokenize(text), ref.tokens)
        rows.append({"prompt": prompt, "answer": text, "reference": expected, "error": error,
                     **parity.to_json()})  # fmt: skip
    matched = sum(r["matched"] for r in rows)
    log(
        f"[correctness] parity with {ref.reference}: {matched}/{len(rows)} prompts "
        f"match over their first {ref.tokens} tokens"
    )
    return {"reference": ref.reference, "ratio": matched / len(rows),
            "matched": matched, "prompts": rows}  # fmt: skip


def _expectations(sender: Sender, plan: Plan, log) -> dict[str, Any]:
    rows = []
    for exp in plan.expectations:
        try:
            text, tokens = sender.send(exp.prompt, exp.max_tokens or plan.tokens)
            failed = exp.judge(text, tokens)
        except Exception as exc:
            text, tokens, failed = "", None, [f"request failed: {exc}"]
        rows.append({"line": exp.line, "name": exp.name, "prompt": exp.prompt, "answer": text,
                     "max_tokens": exp.max_tokens or plan.tokens, "output_tokens": tokens,
                     "failed": failed})  # fmt: skip
        if failed:
            log(f"[correctness] expectation line {exp.line} failed: {'; '.join(failed)}")
    passed = sum(not r["failed"] for r in rows)
    log(f"[correctness] expectations: {passed}/{len(rows)} pass")
    return {"ratio": passed / len(rows), "passed": passed, "results": rows}


def answer_key(prompt: str, max_tokens: int | None) -> str:
    """The key of one answer in metrics.json's `correctness.answers`: `[N] prompt`."""
    return f"[{max_tokens}] {prompt}"


def summary_fields(result: dict[str, Any]) -> dict[str, Any]:
    """metrics.json's correctness fields from a correctness.json result."""
    parity = result.get("parity") or {}
    expect = result.get("expectations") or {}
    return {
        "parity_ratio": parity.get("ratio"),
        "expect_pass_ratio": expect.get("ratio"),
        "correctness": {
            "tokens_compared": result.get("tokens_compared"),
            "deterministic": result.get("deterministic"),
            "parity_prompts": len(parity.get("prompts", [])),
            "parity_skipped": parity.get("skipped", ""),
            "expectations": len(expect.get("results", [])),
            "note": result.get("note", ""),
            "seconds": result.get("seconds"),
            # Kept for the drift check against the series' last PASS run (history/drift.py),
            # by token budget and prompt: the same prompt under another budget answers longer.
            "answers": {
                **{
                    answer_key(r["prompt"], result["tokens_compared"]): r["answer"]
                    for r in parity.get("prompts", [])
                },
                **{
                    answer_key(r["prompt"], r["max_tokens"]): r["answer"]
                    for r in expect.get("results", [])
                },
            },  # fmt: skip
        },
    }
