"""Request validation, model loading and generation for a causal LM (GPT-2 architecture).

The request side (`parse_predict_body`) is pure Python so it can run on the event loop; the
model side (`Generator`) imports torch and transformers lazily and is only ever called from
the batcher's single worker thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_INSTANCES = 64
MAX_PROMPT_CHARS = 100_000
DEFAULT_MAX_NEW_TOKENS = 16
# Keys accepted in "parameters" and, Model Garden vLLM style, inside each instance.
PARAM_KEYS = frozenset(
    {"max_new_tokens", "max_tokens", "temperature", "top_p", "do_sample", "seed", "ignore_eos"}
)
# vLLM's Model Garden container takes raw_response; our answer has one shape, so it is ignored.
IGNORED_INSTANCE_KEYS = frozenset({"raw_response"})


class RequestError(ValueError):
    """The request body is malformed; the message goes back to the client with HTTP 400."""


@dataclass(frozen=True)
class GenParams:
    """Validated generation settings for one group of instances."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    # vLLM's `ignore_eos`: generate exactly max_new_tokens (the end-of-sequence token is held
    # back until then), as load tests with fixed output lengths ask for.
    ignore_eos: bool = False

    def batch_key(self) -> tuple | None:
        """Jobs with equal keys may share a generate call; None means "run alone".

        A seeded sampling job runs alone: the seed only reproduces the output when the
        batch holds exactly the same rows.
        """
        if self.do_sample and self.seed is not None:
            return None
        return (self.max_new_tokens, self.do_sample, self.temperature, self.top_p, self.ignore_eos)


@dataclass(frozen=True)
class Generation:
    """One prediction: text without the prompt, and the number of tokens generated."""

    generated_text: str
    output_tokens: int


def _int(name: str, value: Any, low: int, high: int | None = None) -> int:
    # The Vertex SDK sends parameters as protobuf Values, so 8 may arrive as 8.0.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise RequestError(f"{name} must be {bound}, got {value}")
    return value


def _float(name: str, value: Any, low: float, high: float) -> float:
    """A number in the half-open range (low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(f"{name} must be a number, got {value!r}")
    if not low < value <= high:
        raise RequestError(f"{name} must be > {low:g} and <= {high:g}, got {value}")
    return float(value)


def parse_params(raw: dict[str, Any], cap: int) -> GenParams:
    """Validate generation parameters; max_new_tokens is capped at `cap`, not rejected."""
    unknown = set(raw) - PARAM_KEYS
    if unknown:
        raise RequestError(
            f"unknown parameters: {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(PARAM_KEYS))}"
        )
    if "max_new_tokens" in raw and "max_tokens" in raw:
        raise RequestError("give max_new_tokens or max_tokens, not both")
    name = "max_new_tokens" if "max_new_tokens" in raw else "max_tokens"
    max_new = _int(name, raw.get(name, DEFAULT_MAX_NEW_TOKENS), 1)
    do_sample = raw.get("do_sample", False)
    if not isinstance(do_sample, bool):
        raise RequestError(f"do_sample must be true or false, got {do_sample!r}")
    temperature = raw.get("temperature", 1.0)
    if temperature == 0 and not isinstance(temperature, bool):
        # vLLM's (and Model Garden's) convention: temperature 0 means greedy decoding.
        do_sample, temperature = False, 1.0
    temperature = _float("temperature", temperature, 0.0, 2.0)
    top_p = _float("top_p", raw.get("top_p", 1.0), 0.0, 1.0)
    seed = raw.get("seed")
    if seed is not None:
        seed = _int("seed", seed, 0, 2**63 - 1)
    ignore_eos = raw.get("ignore_eos", False)
    if not isinstance(ignore_eos, bool):
        raise RequestError(f"ignore_eos must be true or false, got {ignore_eos!r}")
    if not do_sample:
        # Greedy ignores these; normalising them lets greedy requests share a batch.
        temperature, top_p, seed = 1.0, 1.0, None
    return GenParams(min(max_new, cap), do_sample, temperature, top_p, seed, ignore_eos)


def parse_predict_body(body: Any, cap: int) -> list[tuple[str, GenParams]]:
    """Validate a Vertex AI predict body; return one (prompt, params) pair per instance.

    Accepts `{"instances": [{"text": ...}], "parameters": {...}}` and the Model Garden vLLM
    shape `{"instances": [{"prompt": ..., "max_tokens": N, "temperature": T}]}`; keys inside
    an instance override "parameters".
    """
    if not isinstance(body, dict):
        raise RequestError("body must be a JSON object with an 'instances' list")
    unknown = set(body) - {"instances", "parameters"}
    if unknown:
        raise RequestError(f"unknown top-level keys: {', '.join(sorted(unknown))}")
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances:
        raise RequestError("'instances' must be a non-empty list")
    if len(instances) > MAX_INSTANCES:
        raise RequestError(f"at most {MAX_INSTANCES} instances per request, got {len(instances)}")
    shared = body.get("parameters", {})
    if not isinstance(shared, dict):
        raise RequestError("'parameters' must be a JSON object")
    try:
        parse_params(shared, cap)  # report a bad shared value once, not per instance
    except RequestError as exc:
        raise RequestError(f"parameters: {exc}") from None
    items = []
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise RequestError(f"instances[{i}] must be an object with 'text' or 'prompt'")
        if ("text" in instance) == ("prompt" in instance):
            raise RequestError(f"instances[{i}] needs exactly one of 'text' or 'prompt'")
        prompt = instance.get("text", instance.get("prompt"))
        if not isinstance(prompt, str) or not prompt.strip():
            raise RequestError(f"instances[{i}]: the prompt must be a non-empty string")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise RequestError(f"instances[{i}]: prompt longer than {MAX_PROMPT_CHARS} chars")
        try:
            prompt.encode("utf-8")  # JSON allows lone surrogates ("\ud800"); tokenizers do not
        except UnicodeEncodeError:
            raise RequestError(f"instances[{i}]: the prompt is not valid Unicode") from None
        overrides = {
            k: v
            for k, v in instance.items()
            if k not in ("text", "prompt") and k not in IGNORED_INSTANCE_KEYS
        }
        merged = dict(shared)
        if overrides.keys() & {"max_tokens", "max_new_tokens"}:
            # The instance's own limit wins, whichever of the two names either side used.
            merged.pop("max_tokens", None)
            merged.pop("max_new_tokens", None)
        merged.update(overrides)
        try:
            params = parse_params(merged, cap)
        except RequestError as exc:
            raise RequestError(f"instances[{i}]: {exc}") from None
        items.append((prompt, params))
    return items


def default_torch_threads() -> int:
    """Intra-op threads for torch: leave one core to the HTTP event loop."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return max(1, len(os.sched_getaffinity(0)) - 1)


def _step_delay(seconds: float):
    """A stopping criterion that never stops: transformers calls it once per generation
    step, after the step's tokens exist, which is where a slower chip would spend longer."""
    import time

    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StepDelay(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            time.sleep(seconds)
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StepDelay()])


class Generator:
    """A loaded model and tokenizer. Not thread-safe: one worker thread owns it."""

    def __init__(self, model_dir: str | Path, step_delay_s: float = 0.0):
        """Load with `from_pretrained`: local files only, never the hub. `step_delay_s`:
        a pause after each generation step (serving/config.py ENV_STEP_DELAY_MS)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a progress bar is noise in container logs
        torch.set_num_threads(default_torch_threads())
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.tokenizer.padding_side = "left"  # decoder-only: new tokens follow the prompt
        self.tokenizer.truncation_side = "left"  # keep the end of an over-long prompt
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
        self.model.to(self.device).eval()
        config = self.model.config
        self.max_positions = int(
            getattr(config, "n_positions", None) or config.max_position_embeddings
        )
        self.eos_token_id = self.tokenizer.eos_token_id
        self.step_delay_s = step_delay_s

    def generate(
        self, prompts: list[str], params: GenParams, sinks: list | None = None
    ) -> list[Generation]:
        """Run one `model.generate` over all prompts (left-padded) and split the rows.

        `sinks` (one per prompt, None for a row nobody streams) get each row's tokens as the
        batch generates them: one token per active row per step (serving/streaming.py).
        """
        import torch

        max_new = min(params.max_new_tokens, self.max_positions - 1)
        enc = self.tokenizer(
            prompts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_positions - max_new,
        ).to(self.device)
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new,
            "do_sample": params.do_sample,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.eos_token_id,
        }
        if params.ignore_eos:  # transformers holds EOS back until min_new_tokens are out
            kwargs["min_new_tokens"] = max_new
        if sinks and any(sinks):
            from serving.streaming import RowStreamer

            kwargs["streamer"] = RowStreamer(self.tokenizer, sinks, self.eos_token_id, max_new)
        if params.do_sample:
            # top_k=0 turns HF's default top-k (50) off, so top_p alone shapes sampling.
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
            if params.seed is not None:
                torch.manual_seed(params.seed)
        if self.step_delay_s:
            kwargs["stopping_criteria"] = _step_delay(self.step_delay_s)
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        new_tokens = out[:, enc["input_ids"].shape[1] :].tolist()
        return [self._row(tokens) for tokens in new_tokens]

    def _row(self, tokens: list[int]) -> Generation:
        # The first EOS ends the row and counts as generated; what follows is padding.
        if self.eos_token_id in tokens:
            tokens = tokens[: tokens.index(self.eos_token_id) + 1]
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        return Generation(text, len(tokens))
