"""The serving APIs the load test speaks: one adapter per API, and the rules that pick one.

Plain Python (no Locust import), data for components/ and deploytest/ too. Each adapter owns
what differs between serving containers: the request body, the answer check (a short, fixed
failure reason per kind of wrong answer, so Locust groups them into a few rows), how a
streamed chunk is read, and where the output-token count comes from. Each contract is taken
from the container's own source or Google's documentation, cited on the adapter; where it
is not documented, the adapter says so.

Output tokens come from the answer's own count (`usage.completion_tokens`, our server's
`output_tokens`), else from the model's own tokenizer (loadtests/tokens.py), else they are
estimated (UTF-8 bytes / 4) and metrics.json says so (`output_tokens_source`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

# How a request's output-token count was had, best first.
SOURCE_ANSWER = "answer"  # the server's own count (usage, output_tokens)
SOURCE_TOKENIZER = "tokenizer"  # the model's tokenizer over the generated text
SOURCE_CHUNKS = "chunks"  # one token per streamed content chunk (no count, no tokenizer)
SOURCE_ESTIMATE = "estimate"  # UTF-8 bytes / 4, OpenAI's rule of thumb
TOKEN_SOURCES = (SOURCE_ANSWER, SOURCE_TOKENIZER, SOURCE_CHUNKS, SOURCE_ESTIMATE)


class AnswerError(ValueError):
    """The answer breaks the API's contract; the message is the failure's (fixed) reason."""


def _usage_tokens(payload: Mapping[str, Any]) -> int | None:
    usage = payload.get("usage")
    if isinstance(usage, dict):
        count = usage.get("completion_tokens")
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            return count
    return None


def _choice_texts(payload: Any, text_of, missing: str) -> str:
    """The joined text of an OpenAI answer's `choices`, `text_of(choice)` each; AnswerError
    (`missing` when a choice has no text) for any other shape."""
    if not isinstance(payload, dict):
        raise AnswerError("body is not a JSON object")
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices:
        raise AnswerError("no choices list (or it is empty)")
    texts = []
    for choice in choices:
        text = text_of(choice) if isinstance(choice, dict) else None
        if not isinstance(text, str):
            raise AnswerError(missing)
        texts.append(text)
    return "".join(texts)


@dataclass(frozen=True)
class Api:
    """One serving API. Subclasses fill in the body, the answer and the chunk rules."""

    name: str
    # The Vertex AI method this API's requests go through: ":predict", ":rawPredict", or
    # "chat" (v1beta1 .../endpoints/E/chat/completions); the streamed one, if it streams.
    vertex_method: str
    vertex_stream_method: str | None
    # A stream must end with `data: [DONE]` (False: a clean end of the body completes it).
    stream_needs_done: bool = True
    # Every streamed content chunk is exactly one token (our server's contract).
    one_token_per_chunk: bool = False
    evidence: str = ""

    @property
    def can_stream(self) -> bool:
        return self.vertex_stream_method is not None

    def body(self, prompt: str, max_tokens: int, stream: bool, exact: bool = False) -> dict:
        """The request for `prompt`; `exact`: ask for exactly `max_tokens` output tokens
        where the API has a way (`exact_output`), else the request is the plain one."""
        raise NotImplementedError

    # Whether `exact` in `body` reaches the server (else output lengths are as they come).
    exact_output: ClassVar[bool] = False

    def messages_body(
        self, messages: list[dict], max_tokens: int, stream: bool, exact: bool = False
    ) -> dict:
        """A request carrying a whole chat history (workload sessions); chat APIs only."""
        raise ValueError(f"--api {self.name} has no message history (use openai-chat)")

    # The correctness phase (correctness/phase.py) decodes greedily where the API can; where
    # it cannot, `deterministic` is False and the phase says so instead of judging parity.
    deterministic: ClassVar[bool] = True

    def greedy_body(self, prompt: str, max_tokens: int) -> dict:
        """A request for the greedy (temperature 0) continuation, not streamed."""
        raise NotImplementedError

    def answer(self, payload: Any) -> tuple[str, int | None]:
        """(generated text, the answer's own token count or None); AnswerError if wrong."""
        raise NotImplementedError

    def chunk(self, event: Mapping[str, Any]) -> tuple[str | None, int | None]:
        """A parsed stream event: (its content text, None when it carries no token; the
        usage count when it has one). AnswerError for a chunk of the wrong shape."""
        choices = event.get("choices")
        if not isinstance(choices, list):
            raise AnswerError("a chunk has no choices list")
        return self._choice_text(choices), _usage_tokens(event)

    def _choice_text(self, choices: list) -> str | None:
        raise NotImplementedError

    def vertex_path(self, endpoint: str, stream: bool) -> str:
        """The request path on Vertex AI (and the emulator) for `projects/P/locations/L/
        endpoints/E`."""
        method = self.vertex_stream_method if stream else self.vertex_method
        if method is None:
            raise ValueError(f"--api {self.name} cannot stream on Vertex AI")
        if method == "chat":
            return f"/v1beta1/{endpoint}/chat/completions"
        return f"/v1/{endpoint}{method}"


class DeploytestApi(Api):
    """Our model server (serving/): `{"instances": [{"text"}], "parameters"}` ->
    `{"predictions": [{"generated_text", "output_tokens"}]}`; `"stream": true` answers
    completions-shaped SSE, one chunk per token, a usage chunk, `[DONE]` (serving/streaming.py)."""

    exact_output = True  # serving/generation.py: ignore_eos asks for max_new_tokens exactly

    def body(self, prompt, max_tokens, stream, exact=False):
        body: dict = {"instances": [{"text": prompt}], "parameters": {"max_new_tokens": max_tokens}}
        if exact:
            body["parameters"]["ignore_eos"] = True
        if stream:
            body["stream"] = True
        return body

    def greedy_body(self, prompt, max_tokens):
        body = self.body(prompt, max_tokens, False)
        body["parameters"]["do_sample"] = False  # serving/generation.py: greedy is the default
        return body

    def answer(self, payload):
        tokens, texts = 0, []
        for item in _predictions(payload):
            if not isinstance(item, dict):
                raise AnswerError("a prediction is not an object")
            if not isinstance(item.get("generated_text"), str):
                raise AnswerError("a prediction lacks generated_text (str)")
            count = item.get("output_tokens")
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise AnswerError("a prediction lacks output_tokens (int)")
            tokens += count
            texts.append(item["generated_text"])
        return "".join(texts), tokens

    def _choice_text(self, choices):
        # One chunk per token, its text possibly empty (a multi-byte character not yet
        # complete): a chunk with choices is a token whatever its text.
        if not choices:
            return None
        first = choices[0]
        return (first.get("text") or "") if isinstance(first, dict) else ""


class OpenAICompletionsApi(Api):
    """OpenAI completions (vLLM's `/v1/completions`, vllm/entrypoints/openai/protocol.py):
    `{"prompt", "max_tokens", "stream", "stream_options": {"include_usage": true}}` ->
    `{"choices": [{"text"}], "usage": {"completion_tokens"}}`; streamed as `data:` chunks of
    `choices[].text` (a chunk may carry several tokens), a final `choices: []` chunk with
    `usage` when asked for, then `data: [DONE]`."""

    # vLLM's extra sampling parameters `min_tokens` and `ignore_eos` (CompletionRequest and
    # ChatCompletionRequest, vllm/entrypoints/openai/{completion,chat_completion}/protocol.py
    # in the vLLM `make vllm` installs); OpenAI's own API has neither (how other OpenAI-style
    # servers treat them is unverified).
    exact_output = True

    def body(self, prompt, max_tokens, stream, exact=False):
        body: dict = {"prompt": prompt, "max_tokens": max_tokens}
        _stream_and_length(body, max_tokens, stream, exact)
        return body

    def greedy_body(self, prompt, max_tokens):
        # vLLM: temperature 0 is greedy sampling (vllm/sampling_params.py)
        return {**self.body(prompt, max_tokens, False), "temperature": 0.0, "seed": 0}

    def answer(self, payload):
        text = _choice_texts(payload, lambda c: c.get("text"), "a choice lacks text (str)")
        return text, _usage_tokens(payload)

    def _choice_text(self, choices):
        text = "".join(
            c.get("text") or "" for c in choices if isinstance(c, dict)
        )  # several choices only with n > 1, which we never ask for
        return text or None


class OpenAIChatApi(Api):
    """OpenAI chat completions (vLLM's `/v1/chat/completions`; on Vertex AI the documented
    `v1beta1/.../endpoints/E/chat/completions` of Model Garden's vLLM and TGI containers,
    `model: ""`): `{"messages": [{"role": "user", "content"}], "max_tokens"}` ->
    `{"choices": [{"message": {"content"}}], "usage"}`; streamed as `choices[].delta`
    chunks, the first one role-only (`delta.role`, no content: not a token). A stream that
    ends cleanly without `[DONE]` is complete: not every server behind this route sends it
    (unverified for Vertex AI's relay)."""

    exact_output = True  # as openai-completions: vLLM's min_tokens and ignore_eos

    def body(self, prompt, max_tokens, stream, exact=False):
        return self.messages_body([{"role": "user", "content": prompt}], max_tokens, stream, exact)

    def messages_body(self, messages, max_tokens, stream, exact=False):
        body: dict = {"model": "", "messages": messages, "max_tokens": max_tokens}
        _stream_and_length(body, max_tokens, stream, exact)
        return body

    def greedy_body(self, prompt, max_tokens):
        return {**self.body(prompt, max_tokens, False), "temperature": 0.0, "seed": 0}

    def answer(self, payload):
        def content(choice: dict):
            message = choice.get("message")
            return message.get("content") if isinstance(message, dict) else None

        text = _choice_texts(payload, content, "a choice lacks message.content (str)")
        return text, _usage_tokens(payload)

    def _choice_text(self, choices):
        text = ""
        for choice in choices:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if delta is not None and not isinstance(delta, dict):
                raise AnswerError("a chunk's delta is not an object")
            text += (delta or {}).get("content") or ""
        return text or None


def _stream_and_length(body: dict, max_tokens: int, stream: bool, exact: bool) -> None:
    if exact:
        body["min_tokens"] = max_tokens
        body["ignore_eos"] = True
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}


def _predictions(payload: Any) -> list:
    """A Vertex AI `:predict` answer's non-empty `predictions`; AnswerError otherwise."""
    if not isinstance(payload, dict):
        raise AnswerError("body is not a JSON object")
    predictions = payload.get("predictions")
    if not isinstance(predictions, list) or not predictions:
        raise AnswerError("no predictions list (or it is empty)")
    return predictions


def _string_predictions(payload: Any) -> list[str]:
    predictions = _predictions(payload)
    if not all(isinstance(p, str) for p in predictions):
        raise AnswerError("a prediction is not a string")
    return predictions


class VertexVllmApi(Api):
    """Model Garden's vLLM container on `:predict` (vertex-ai-samples,
    model_garden_huggingface_vllm_deployment.ipynb; community-content/vertex_model_garden/
    model_oss/vllm/vllm.patch): `{"instances": [{"prompt", "max_tokens", "temperature",
    "top_p", "top_k", "raw_response": true}]}` -> `{"predictions": ["text"]}` (without
    `raw_response` the string is "Prompt:\\n...\\nOutput:\\n..."). No count in the answer;
    no stream on `:predict` (stream through openai-chat)."""

    def body(self, prompt, max_tokens, stream, exact=False):
        # The container's handling of vLLM's min_tokens on :predict is not documented:
        # output lengths are measured as they come.
        instance = {
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 1.0,
            "top_p": 1.0,
            "top_k": -1,
            "raw_response": True,
        }
        return {"instances": [instance]}

    def greedy_body(self, prompt, max_tokens):
        body = self.body(prompt, max_tokens, False)
        body["instances"][0]["temperature"] = 0.0
        return body

    def answer(self, payload):
        return "".join(_string_predictions(payload)), None


class TgiApi(Api):
    """Hugging Face TGI's Vertex AI route (text-generation-inference router/src/vertex.rs):
    `{"instances": [{"inputs", "parameters": {"max_new_tokens"}}]}` -> `{"predictions":
    ["text"]}`. Only `max_new_tokens` and `seed` are honoured and sampling is forced on
    (`do_sample: true`), so answers are not deterministic; no count in the answer; no stream
    on `:predict` (stream through openai-chat)."""

    def body(self, prompt, max_tokens, stream, exact=False):
        # Only max_new_tokens and seed reach the generation (vertex.rs): lengths as they come.
        return {"instances": [{"inputs": prompt, "parameters": {"max_new_tokens": max_tokens}}]}

    deterministic = False  # sampling is forced on: a fixed seed reproduces, it is not greedy

    def greedy_body(self, prompt, max_tokens):
        body = self.body(prompt, max_tokens, False)
        body["instances"][0]["parameters"]["seed"] = 0
        return body

    def answer(self, payload):
        return "".join(_string_predictions(payload)), None


class HfInferenceToolkitApi(Api):
    """Hugging Face PyTorch inference containers (huggingface-inference-toolkit
    webservice_starlette.py and handler.py `VertexAIHandler`, with AIP_MODE=PREDICTION):
    `{"instances": ["text"], "parameters": {"max_new_tokens", "return_full_text": false}}`
    -> `{"predictions": [[{"generated_text"}]]}`, one list per instance (the prompt is
    included unless `return_full_text` is false). No count, no stream."""

    # The toolkit hands `parameters` to the transformers pipeline as keyword arguments
    # (handler.py), which passes generation ones on: `min_new_tokens` is generate()'s own.
    exact_output = True

    def body(self, prompt, max_tokens, stream, exact=False):
        parameters: dict = {"max_new_tokens": max_tokens, "return_full_text": False}
        if exact:
            parameters["min_new_tokens"] = max_tokens
        return {"instances": [prompt], "parameters": parameters}

    def greedy_body(self, prompt, max_tokens):
        # transformers' text-generation pipeline: do_sample false is greedy search
        body = self.body(prompt, max_tokens, False)
        body["parameters"]["do_sample"] = False
        return body

    def answer(self, payload):
        texts = []
        for item in _predictions(payload):
            if not isinstance(item, list) or not item:
                raise AnswerError("a prediction is not a list of generations")
            for generation in item:
                text = generation.get("generated_text") if isinstance(generation, dict) else None
                if not isinstance(text, str):
                    raise AnswerError("a generation lacks generated_text (str)")
                texts.append(text)
        return "".join(texts), None


APIS: dict[str, Api] = {
    api.name: api
    for api in (
        DeploytestApi("deploytest", ":predict", ":streamRawPredict", one_token_per_chunk=True),
        # Custom container whose predict route is /v1/completions (vertex-ai-samples,
        # notebooks/official/prediction/vertexai_serving_vllm/...cpu_llama3_2_3B.ipynb):
        # :rawPredict passes the OpenAI body through untouched.
        OpenAICompletionsApi("openai-completions", ":rawPredict", ":streamRawPredict"),
        OpenAIChatApi("openai-chat", "chat", "chat", stream_needs_done=False),
        VertexVllmApi("vertex-vllm", ":predict", None),
        TgiApi("tgi", ":predict", None),
        HfInferenceToolkitApi("hf-inference-toolkit", ":predict", None),
    )
}
API_NAMES = tuple(APIS)
AUTO = "auto"


def get_api(name: str) -> Api:
    """The adapter for `name`; ValueError naming the choices."""
    try:
        return APIS[name]
    except KeyError:
        raise ValueError(
            f"--api {name!r} is not a serving API deploytest knows: use one of "
            f"{', '.join(API_NAMES)} (or auto)"
        ) from None


def check_api(name: str, stream: bool) -> None:
    """ValueError for an unknown API or a stream the API cannot give; `auto` passes."""
    if name == AUTO:
        return
    api = get_api(name)
    if stream and not api.can_stream:
        raise ValueError(
            f"--api {name} cannot stream (no token stream on Vertex AI's :predict for this "
            "container): drop --stream, or use --api openai-chat, which Vertex AI serves for "
            "Model Garden's vLLM and TGI containers"
        )


# --api auto: the first rule whose every condition holds picks the API (and the one to use
# when --stream is asked and the first cannot stream). Image substrings are those of the
# containers Google and Hugging Face publish for Vertex AI (unverified beyond their names).
AUTO_RULES: tuple[dict[str, Any], ...] = (
    {"why": "our model server (python -m serving)", "command": "-m serving", "api": "deploytest"},
    {"why": "our model server image", "image": "deploytest-serving", "api": "deploytest"},
    {"why": "our model server image", "image": "/serving:", "api": "deploytest"},
    {
        "why": "Model Garden vLLM container",
        "image": "vertex-vision-model-garden-dockers/pytorch-vllm-serve",
        "api": "vertex-vllm",
        "stream_api": "openai-chat",
    },
    {
        "why": "Hugging Face TGI container for Vertex AI",
        "image": "huggingface-text-generation-inference",
        "api": "tgi",
        "stream_api": "openai-chat",
    },
    {
        "why": "Hugging Face PyTorch inference container (inference toolkit)",
        "image": "huggingface-pytorch-inference",
        "api": "hf-inference-toolkit",
    },
    {
        "why": "predict route /v1/chat/completions",
        "route": "/v1/chat/completions",
        "api": "openai-chat",
    },
    {
        "why": "predict route /v1/completions",
        "route": "/v1/completions",
        "api": "openai-completions",
    },
)


def auto_api(container_spec: Mapping[str, Any], stream: bool) -> tuple[str, str]:
    """(api, why) for a model's `containerSpec` (REST JSON names); ValueError when no rule
    matches (the run is refused before the paid deploy, unless --api is given)."""
    image = str(container_spec.get("imageUri") or container_spec.get("image_uri") or "")
    route = str(container_spec.get("predictRoute") or container_spec.get("predict_route") or "")
    command = " ".join(
        str(part) for key in ("command", "args") for part in (container_spec.get(key) or [])
    )
    for rule in AUTO_RULES:
        if "image" in rule and rule["image"] not in image:
            continue
        if "route" in rule and route.rstrip("/") != rule["route"]:
            continue
        if "command" in rule and rule["command"] not in command:
            continue
        api = rule["api"]
        if stream and not APIS[api].can_stream:
            if "stream_api" not in rule:
                raise ValueError(
                    f"--api auto picked {api} ({rule['why']}), which cannot stream: drop --stream"
                )
            return rule["stream_api"], f"{rule['why']}, streamed through {rule['stream_api']}"
        return api, rule["why"]
    raise ValueError(
        f"--api auto: no rule knows the container (image {image or '-'!r}, predict route "
        f"{route or '-'!r}); give --api {'|'.join(API_NAMES)}"
    )
