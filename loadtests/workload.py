"""Workloads as the LLM benchmarks define them: input and output lengths in tokens, prompt
datasets, shared prefixes and chat sessions; and the requests built from one.

Plain Python (no Locust import): `deploytest` checks a spec before anything is created, the
load-test task checks it against the model, and every Locust process builds the same requests
from it (the seed), so master and workers send one workload.

A spec (YAML or JSON; `--workload FILE|NAME`, NAME a file in loadtests/workloads/):

    name: chat-512-128          # optional, shown in the report
    seed: 0                     # the prompts' seed (default 0)
    requests: 200               # distinct requests built (default 100; a dataset: its size)
    input_tokens: 512           # or {distribution: normal, mean, stddev, min, max}
    output_tokens: 128          #    {distribution: uniform, min, max}; or "dataset"
    exact_output: true          # ask the server for exactly that many (default true)
    dataset: {path: FILE, format: sharegpt|jsonl}   # a local path or gs://
    shared_prefix: {tokens: 256, share: 0.5}        # a prefix before a share's prompts
    sessions: {turns: 3}        # multi-turn chats (openai-chat): each turn sends the history

Lengths are exact: synthetic prompts are words that are one token each in the model's own
tokenizer (a byte-level BPE splits text before each space, so N such words are N tokens),
checked by encoding the prompt again. A shared prefix's tokens come on top of a request's
`input_tokens` (vLLM's prefix-repetition and inference-perf's shared-prefix data count a
system prompt and a question the same way). Input tokens are those of the prompt (and the shared
prefix) as the tokenizer counts them; a chat template's own tokens are not in them. Output
lengths are asked for exactly where the API allows it (loadtests/apis.py `exact_fields`:
vLLM's `min_tokens` and `ignore_eos`, our server's `ignore_eos`); elsewhere the answer's
length is measured as it came.

Datasets, read from a file (nothing is downloaded): ShareGPT JSON (a list of
`{"conversations": [{"from": "human"|"gpt", "value"}]}`, as vLLM's `bench serve` reads it:
the first human turn is the prompt, the next gpt turn's length the output length; with
sessions, the human turns are the session's turns) or JSONL (`{"prompt", "output_tokens"?}`
a line).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORKLOADS_DIR = Path(__file__).with_name("workloads")
KEYS = (
    "name",
    "seed",
    "requests",
    "input_tokens",
    "output_tokens",
    "exact_output",
    "dataset",
    "shared_prefix",
    "sessions",
)
DISTRIBUTIONS = ("normal", "uniform")
FORMATS = ("sharegpt", "jsonl")
FROM_DATASET = "dataset"
MAX_REQUESTS = 10_000
MAX_TOKENS = 1_000_000  # a length no model's context holds: a typo, not a workload
MAX_TURNS = 32
MAX_SPEC_BYTES = 64 * 1024
MAX_DATASET_BYTES = 64 * 1024 * 1024
DEFAULT_REQUESTS = 100
# How far the achieved output lengths' median may fall from the spec's before a run says so.
OUTPUT_TOLERANCE = 0.10
_WORD = re.compile(r" [a-z]{2,}")
_MARKED_WORD = re.compile("[\u0120\u2581][a-z]{2,}")


class WorkloadError(ValueError):
    """A spec or dataset that cannot drive a run; the message names the field or line."""


@dataclass(frozen=True)
class Lengths:
    """A length in tokens: fixed (`value`), a clipped normal, uniform, or from the dataset."""

    kind: str  # "fixed", "normal", "uniform", "dataset"
    value: int = 0
    mean: float = 0.0
    stddev: float = 0.0
    min: int = 1
    max: int = 0

    def to_spec(self) -> Any:
        if self.kind == "fixed":
            return self.value
        if self.kind == FROM_DATASET:
            return FROM_DATASET
        spec: dict[str, Any] = {"distribution": self.kind, "min": self.min, "max": self.max}
        if self.kind == "normal":
            spec.update(mean=self.mean, stddev=self.stddev)
        return spec

    @property
    def upper(self) -> int:
        """The longest length this can give (0 for the dataset's own: known once read)."""
        return self.value if self.kind == "fixed" else self.max

    @property
    def target(self) -> float | None:
        """The length asked for on average (None for the dataset's own)."""
        if self.kind == "fixed":
            return float(self.value)
        if self.kind == "normal":
            return self.mean
        if self.kind == "uniform":
            return (self.min + self.max) / 2
        return None

    def sample(self, rng: random.Random) -> int:
        if self.kind == "fixed":
            return self.value
        if self.kind == "uniform":
            return rng.randint(self.min, self.max)
        return max(self.min, min(self.max, round(rng.gauss(self.mean, self.stddev))))


@dataclass(frozen=True)
class Dataset:
    path: str
    format: str


@dataclass(frozen=True)
class Workload:
    """A checked spec (`parse_workload`); `to_spec()` is its canonical form."""

    name: str = ""
    seed: int = 0
    requests: int | None = None  # None: DEFAULT_REQUESTS, or a dataset's every usable item
    input_tokens: Lengths | None = None
    output_tokens: Lengths | None = None
    exact_output: bool = True
    dataset: Dataset | None = None
    prefix_tokens: int = 0
    prefix_share: float = 0.0
    turns: int = 1

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"seed": self.seed, "exact_output": self.exact_output}
        if self.name:
            spec["name"] = self.name
        if self.requests is not None:
            spec["requests"] = self.requests
        if self.input_tokens is not None:
            spec["input_tokens"] = self.input_tokens.to_spec()
        if self.output_tokens is not None:
            spec["output_tokens"] = self.output_tokens.to_spec()
        if self.dataset is not None:
            spec["dataset"] = {"path": self.dataset.path, "format": self.dataset.format}
        if self.prefix_tokens:
            spec["shared_prefix"] = {"tokens": self.prefix_tokens, "share": self.prefix_share}
        if self.turns > 1:
            spec["sessions"] = {"turns": self.turns}
        return spec

    def identity(self) -> str:
        """A short stable id of what is sent (the name and a dataset's folder aside): runs
        compare in one history series only on the same identity. A dataset counts by its
        file name and format (its folder differs between a laptop and a bucket)."""
        spec = self.to_spec()
        spec.pop("name", None)
        if "dataset" in spec:
            spec["dataset"] = {**spec["dataset"], "path": _basename(spec["dataset"]["path"])}
        canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def describe(self) -> str:
        """One line: `512 in / 128 out tokens, 100 requests, seed 0`, and the extras."""
        parts = [
            f"{_describe_lengths(self.input_tokens, 'prompt')} in / "
            f"{_describe_lengths(self.output_tokens, 'max_new_tokens')} out tokens"
        ]
        if self.dataset is not None:
            parts.append(f"{self.dataset.format} {_basename(self.dataset.path)}")
        if self.prefix_tokens:
            parts.append(f"shared prefix {self.prefix_tokens} tokens x {self.prefix_share:.0%}")
        if self.turns > 1:
            parts.append(f"{self.turns}-turn sessions")
        parts.append(f"seed {self.seed}")
        label = f"{self.name}: " if self.name else ""
        return label + ", ".join(parts)

    def max_total_tokens(self) -> int:
        """The most tokens one synthetic request's context holds (0 when the dataset sets a
        length): what must fit the model's context."""
        if self.input_tokens is None or self.input_tokens.kind == FROM_DATASET:
            return 0
        if self.output_tokens is None or self.output_tokens.kind == FROM_DATASET:
            return 0
        per_turn = self.input_tokens.upper + self.output_tokens.upper
        return self.prefix_tokens + per_turn * self.turns


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _describe_lengths(lengths: Lengths | None, fallback: str) -> str:
    if lengths is None:
        return f"({fallback})"
    spec = lengths.to_spec()
    if lengths.kind == "normal":
        return f"normal({lengths.mean:g}, {lengths.stddev:g}) in [{lengths.min}, {lengths.max}]"
    if lengths.kind == "uniform":
        return f"uniform[{lengths.min}, {lengths.max}]"
    return str(spec)


def _int(value: Any, where: str, low: int = 1, high: int = MAX_TOKENS) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WorkloadError(f"{where} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise WorkloadError(f"{where} must be within [{low}, {high}], got {value}")
    return value


def _number(value: Any, where: str, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WorkloadError(f"{where} must be a number, got {value!r}")
    if value < low:
        raise WorkloadError(f"{where} must be >= {low:g}, got {value:g}")
    return float(value)


def _mapping(value: Any, where: str, keys: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise WorkloadError(f"{where} must be a mapping, got {value!r}")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise WorkloadError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(keys)})")
    return value


def parse_lengths(raw: Any, where: str) -> Lengths:
    """A length field: an integer, "dataset", or a distribution mapping."""
    if raw == FROM_DATASET:
        return Lengths(FROM_DATASET)
    if not isinstance(raw, Mapping):
        return Lengths("fixed", value=_int(raw, where))
    spec = _mapping(raw, where, ("distribution", "mean", "stddev", "min", "max"))
    kind = spec.get("distribution")
    if kind not in DISTRIBUTIONS:
        raise WorkloadError(
            f"{where}.distribution must be one of {', '.join(DISTRIBUTIONS)}, got {kind!r}"
        )
    if "min" not in spec or "max" not in spec:
        raise WorkloadError(f"{where}: a {kind} distribution needs min and max")
    low, high = _int(spec["min"], f"{where}.min"), _int(spec["max"], f"{where}.max")
    if low > high:
        raise WorkloadError(f"{where}: min {low} is greater than max {high}")
    if kind == "uniform":
        extra = sorted(set(spec) & {"mean", "stddev"})
        if extra:
            raise WorkloadError(f"{where}: a uniform distribution takes no {extra[0]}")
        return Lengths("uniform", min=low, max=high)
    if "mean" not in spec or "stddev" not in spec:
        raise WorkloadError(f"{where}: a normal distribution needs mean and stddev")
    mean = _number(spec["mean"], f"{where}.mean", 1.0)
    if not low <= mean <= high:
        raise WorkloadError(f"{where}.mean {mean:g} is outside [min {low}, max {high}]")
    return Lengths(
        "normal", mean=mean, stddev=_number(spec["stddev"], f"{where}.stddev"), min=low, max=high
    )


def parse_workload(data: Any, where: str = "workload") -> Workload:
    """A checked Workload from a spec's parsed mapping; WorkloadError names the field."""
    spec = _mapping(data, where, KEYS)
    name = spec.get("name", "")
    if not isinstance(name, str) or len(name) > 100:
        raise WorkloadError(f"{where}.name must be a string of at most 100 characters")
    seed = _int(spec.get("seed", 0), f"{where}.seed", 0, 2**32 - 1)
    requests = spec.get("requests")
    if requests is not None:
        requests = _int(requests, f"{where}.requests", 1, MAX_REQUESTS)
    exact = spec.get("exact_output", True)
    if not isinstance(exact, bool):
        raise WorkloadError(f"{where}.exact_output must be true or false, got {exact!r}")
    dataset = None
    if "dataset" in spec:
        raw = _mapping(spec["dataset"], f"{where}.dataset", ("path", "format"))
        path, fmt = raw.get("path"), raw.get("format")
        if not isinstance(path, str) or not path.strip():
            raise WorkloadError(f"{where}.dataset.path must be a file path or gs:// URI")
        if fmt not in FORMATS:
            raise WorkloadError(f"{where}.dataset.format must be one of {', '.join(FORMATS)}")
        dataset = Dataset(path.strip(), fmt)
    inputs = spec.get("input_tokens")
    outputs = spec.get("output_tokens")
    inputs = parse_lengths(inputs, f"{where}.input_tokens") if inputs is not None else None
    outputs = parse_lengths(outputs, f"{where}.output_tokens") if outputs is not None else None
    if dataset is not None:
        if inputs is not None and inputs.kind != FROM_DATASET:
            raise WorkloadError(
                f"{where}.input_tokens: a dataset's prompts set the input length (drop it, "
                'or say "dataset")'
            )
        inputs = Lengths(FROM_DATASET)
        outputs = outputs or Lengths(FROM_DATASET)
    else:
        for lengths, key in ((inputs, "input_tokens"), (outputs, "output_tokens")):
            if lengths is not None and lengths.kind == FROM_DATASET:
                raise WorkloadError(f'{where}.{key}: "dataset" needs a dataset')
        if inputs is None and outputs is None:
            raise WorkloadError(f"{where}: give input_tokens, output_tokens or a dataset")
        if inputs is None:
            raise WorkloadError(
                f"{where}.input_tokens is missing (synthetic prompts need their length)"
            )
    prefix_tokens, prefix_share = 0, 0.0
    if "shared_prefix" in spec:
        raw = _mapping(spec["shared_prefix"], f"{where}.shared_prefix", ("tokens", "share"))
        prefix_tokens = _int(raw.get("tokens"), f"{where}.shared_prefix.tokens")
        prefix_share = _number(raw.get("share", 1.0), f"{where}.shared_prefix.share")
        if prefix_share > 1:
            raise WorkloadError(f"{where}.shared_prefix.share must be within [0, 1]")
    turns = 1
    if "sessions" in spec:
        raw = _mapping(spec["sessions"], f"{where}.sessions", ("turns",))
        turns = _int(raw.get("turns"), f"{where}.sessions.turns", 1, MAX_TURNS)
    return Workload(
        name=name,
        seed=seed,
        requests=requests,
        input_tokens=inputs,
        output_tokens=outputs,
        exact_output=exact,
        dataset=dataset,
        prefix_tokens=prefix_tokens,
        prefix_share=prefix_share,
        turns=turns,
    )


def read_spec(text_or_path: str) -> tuple[dict[str, Any], Path | None]:
    """(the parsed mapping, the file it came from) for a spec given as JSON text, a file
    (YAML or JSON) or a NAME in loadtests/workloads/."""
    import yaml

    source = text_or_path.strip()
    if source.startswith("{"):
        where, text, path = "--workload", source, None
    else:
        path = Path(source)
        if not path.is_file() and "/" not in source and not source.endswith((".yaml", ".json")):
            named = WORKLOADS_DIR / f"{source}.yaml"
            if not named.is_file():
                known = ", ".join(sorted(p.stem for p in WORKLOADS_DIR.glob("*.yaml")))
                raise WorkloadError(
                    f"--workload {source}: no such file, and no workload of that name "
                    f"(known: {known})"
                )
            path = named
        if not path.is_file():
            raise WorkloadError(f"--workload {source}: no such file")
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise WorkloadError(f"--workload {source}: over {MAX_SPEC_BYTES // 1024} KiB")
        where, text = str(path), path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WorkloadError(f"{where}: not YAML or JSON ({exc})") from None
    return data, path


def parse_workload_json(text: str) -> Workload:
    """A Workload from its canonical JSON (a pipeline parameter, an environment variable)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise WorkloadError(f"the workload is not JSON ({exc})") from None
    return parse_workload(data)


def load_workload(text_or_path: str) -> Workload:
    """A checked Workload from `--workload`: its dataset path made absolute against the
    spec file's folder (a relative path in a file means beside it)."""
    data, path = read_spec(text_or_path)
    workload = parse_workload(data, str(path) if path else "--workload")
    if workload.dataset and path and not workload.dataset.path.startswith("gs://"):
        dataset_path = Path(workload.dataset.path)
        if not dataset_path.is_absolute():
            dataset_path = (path.parent / dataset_path).resolve()
        workload = _replace_dataset(workload, str(dataset_path))
    return workload


def _replace_dataset(workload: Workload, path: str) -> Workload:
    import dataclasses

    return dataclasses.replace(workload, dataset=Dataset(path, workload.dataset.format))


def from_flags(
    workload: Workload | None, input_tokens: int | None, output_tokens: int | None
) -> Workload | None:
    """The spec with `--input-tokens`/`--output-tokens` applied (each overrides the spec's)."""
    import dataclasses

    if input_tokens is None and output_tokens is None:
        return workload
    spec = workload.to_spec() if workload else {}
    if input_tokens is not None:
        spec["input_tokens"] = input_tokens
    if output_tokens is not None:
        spec["output_tokens"] = output_tokens
    checked = parse_workload(spec, "--input-tokens/--output-tokens")
    if workload and workload.dataset:
        checked = dataclasses.replace(checked, dataset=workload.dataset)
    return checked


# --- datasets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetItem:
    turns: tuple[str, ...]  # the user's messages (one unless sessions)
    output_tokens: int | None  # the recorded answer's length, when the dataset has one
    answer: str = ""  # the recorded answer, counted with the tokenizer when given


def read_dataset(path: str | Path, fmt: str) -> list[DatasetItem]:
    """Every usable item of a local dataset file; WorkloadError names the line or item."""
    path = Path(path)
    if not path.is_file():
        raise WorkloadError(f"dataset {path}: no such file")
    if path.stat().st_size > MAX_DATASET_BYTES:
        raise WorkloadError(f"dataset {path}: over {MAX_DATASET_BYTES // 2**20} MiB")
    text = path.read_text(encoding="utf-8", errors="strict")
    items = _read_jsonl(text, path) if fmt == "jsonl" else _read_sharegpt(text, path)
    if not items:
        raise WorkloadError(f"dataset {path} holds no usable prompt")
    return items


def _read_jsonl(text: str, path: Path) -> list[DatasetItem]:
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise WorkloadError(f"{path} line {number}: not JSON ({exc.args[0]})") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            raise WorkloadError(f'{path} line {number}: needs a "prompt" string')
        unknown = sorted(set(row) - {"prompt", "output_tokens"})
        if unknown:
            raise WorkloadError(f"{path} line {number}: unknown key {unknown[0]!r}")
        out = row.get("output_tokens")
        if out is not None:
            out = _int(out, f"{path} line {number}: output_tokens")
        if row["prompt"].strip():
            items.append(DatasetItem((row["prompt"],), out))
    return items


_HUMAN = ("human", "user")
_MODEL = ("gpt", "assistant", "chatgpt", "bard", "bing")


def _read_sharegpt(text: str, path: Path) -> list[DatasetItem]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise WorkloadError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, list):
        raise WorkloadError(f"{path}: a ShareGPT file is a JSON list of conversations")
    items = []
    for number, conversation in enumerate(data):
        turns = conversation.get("conversations") if isinstance(conversation, dict) else None
        if not isinstance(turns, list):
            raise WorkloadError(f'{path} item {number}: no "conversations" list')
        humans, answer = [], ""
        for turn in turns:
            if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
                raise WorkloadError(f'{path} item {number}: a turn lacks a "value" string')
            speaker = turn.get("from")
            if speaker in _HUMAN and turn["value"].strip():
                humans.append(turn["value"])
            elif speaker in _MODEL and len(humans) == 1 and not answer:
                answer = turn["value"]
        if humans:  # vLLM skips conversations of fewer than 2 turns; we keep a lone prompt
            items.append(DatasetItem(tuple(humans), None, answer))
    return items


# --- building the requests ----------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    """One message a request sends, its tokens, and the output tokens asked for."""

    text: str
    input_tokens: int
    max_tokens: int


@dataclass(frozen=True)
class WorkloadRequest:
    """One request (or one session: its turns in order), with a shared prefix or not."""

    turns: tuple[Turn, ...]
    prefix: str = ""
    prefix_tokens: int = 0

    @property
    def input_tokens(self) -> int:
        return self.prefix_tokens + self.turns[0].input_tokens

    @property
    def prompt(self) -> str:
        """The first turn's whole prompt (the prefix, then the message)."""
        return self.prefix + self.turns[0].text


@dataclass
class Built:
    requests: list[WorkloadRequest]
    skipped: int = 0  # dataset items over the model's context
    notes: list[str] = field(default_factory=list)


class WordPool:
    """Words that are one token each in `encode`'s tokenizer, from its own vocabulary."""

    def __init__(
        self,
        vocab: Mapping[str, int],
        decode: Callable[[list[int]], str],
        encode: Callable[[str], list[int]],
    ):
        self.encode = encode
        # Byte-level BPE writes a leading space as "Ġ", SentencePiece as "▁": try those
        # first (a 50k vocabulary scans in well under a second), then every token.
        marked = sorted(i for t, i in vocab.items() if _MARKED_WORD.fullmatch(t))
        words = self._words(marked, decode, encode) if len(marked) >= 16 else []
        if len(words) < 16:
            words = self._words(sorted(vocab.values()), decode, encode)
        if len(words) < 16:
            raise WorkloadError(
                f"the model's tokenizer has {len(words)} single-token words (' word'): "
                "too few to build prompts of exact lengths"
            )
        self.words = words

    @staticmethod
    def _words(ids, decode, encode) -> list[str]:
        words = []
        for token_id in ids:
            text = decode([token_id])
            if _WORD.fullmatch(text) and encode(text) == [token_id]:
                words.append(text)
        return words

    def text(self, tokens: int, rng: random.Random) -> str:
        """A text of exactly `tokens` tokens (checked by encoding it again)."""
        if tokens <= 0:
            return ""
        for _ in range(8):
            text = "".join(rng.choice(self.words) for _ in range(tokens))
            if len(self.encode(text)) == tokens:
                return text
        raise WorkloadError(
            f"cannot build a prompt of exactly {tokens} tokens with this tokenizer (its words "
            "merge across spaces)"
        )


def tokenizer_functions(tokenizer_path: str):
    """(vocab, decode, encode) of a tokenizer.json (or a model folder holding one)."""
    from loadtests.tokens import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_path)

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False).ids

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=False)

    return tokenizer.get_vocab(with_added_tokens=False), decode, encode


def build_requests(
    workload: Workload,
    tokenizer_path: str,
    context_tokens: int | None = None,
    dataset_path: str | None = None,
    default_output: int = 16,
) -> Built:
    """The workload's requests, the same for every process given the same seed.

    `context_tokens`: the model's context (positions); a synthetic spec that cannot fit is a
    WorkloadError, dataset items that do not fit are skipped and counted. `dataset_path`: the
    dataset's local copy (a gs:// dataset is fetched by the load-test task first).
    `default_output`: output tokens asked for when the spec and dataset give none (the run's
    `max_new_tokens`).
    """
    vocab, decode, encode = tokenizer_functions(tokenizer_path)
    rng = random.Random(workload.seed)
    check_context(workload, context_tokens)
    pool = (
        WordPool(vocab, decode, encode)
        if workload.dataset is None or workload.prefix_tokens
        else None
    )
    prefix = (
        pool.text(workload.prefix_tokens, random.Random(workload.seed + 1))
        if (workload.prefix_tokens and pool)
        else ""
    )

    def output_length(recorded: int | None) -> int:
        lengths = workload.output_tokens
        if lengths is None:
            return default_output
        if lengths.kind == FROM_DATASET:
            return recorded or default_output
        return lengths.sample(rng)

    requests: list[WorkloadRequest] = []
    built = Built(requests)
    if workload.dataset is None:
        count = workload.requests or DEFAULT_REQUESTS
        for _ in range(count):
            turns = []
            for _ in range(workload.turns):
                n = workload.input_tokens.sample(rng)
                turns.append(Turn(pool.text(n, rng), n, output_length(None)))
            requests.append(_with_prefix(tuple(turns), prefix, workload, rng))
        return built
    items = read_dataset(dataset_path or workload.dataset.path, workload.dataset.format)
    rng.shuffle(items)
    for item in items:
        if workload.requests is not None and len(requests) >= workload.requests:
            break
        recorded = item.output_tokens
        if recorded is None and item.answer:
            recorded = len(encode(item.answer)) or None
        messages = item.turns[: workload.turns]
        turns = tuple(Turn(text, len(encode(text)), output_length(recorded)) for text in messages)
        request = _with_prefix(turns, prefix, workload, rng)
        total = request.prefix_tokens + sum(t.input_tokens + t.max_tokens for t in turns)
        if context_tokens and total > context_tokens:
            built.skipped += 1
            continue
        requests.append(request)
    if built.skipped:
        built.notes.append(
            f"{built.skipped} dataset item(s) skipped: longer than the model's context "
            f"({context_tokens} tokens)"
        )
    if not requests:
        raise WorkloadError(
            f"dataset {workload.dataset.path}: no prompt fits the model's context "
            f"({context_tokens} tokens)"
        )
    return built


def _with_prefix(turns, prefix: str, workload: Workload, rng: random.Random) -> WorkloadRequest:
    if prefix and rng.random() < workload.prefix_share:
        return WorkloadRequest(turns, prefix, workload.prefix_tokens)
    return WorkloadRequest(turns)


def check_context(workload: Workload, context_tokens: int | None) -> None:
    """WorkloadError when the longest synthetic request cannot fit the model's context."""
    need = workload.max_total_tokens()
    if context_tokens and need > context_tokens:
        raise WorkloadError(
            f"the workload needs up to {need} tokens a request (input + output"
            + (f", {workload.turns} turns" if workload.turns > 1 else "")
            + (", shared prefix" if workload.prefix_tokens else "")
            + f"), over the model's context of {context_tokens} tokens"
        )


def check_api(workload: Workload, api: str) -> None:
    """WorkloadError for sessions on an API without a message history."""
    if workload.turns > 1 and api != "openai-chat":
        raise WorkloadError(
            f"workload sessions ({workload.turns} turns) need --api openai-chat (a chat API "
            f"sends the history), not {api}"
        )


def context_tokens(model: str | Path) -> int | None:
    """The model's context in tokens from its config.json (`max_position_embeddings` or
    GPT-2's `n_positions`): `model` is the file or the model's folder; None without one."""
    path = Path(model)
    try:
        config = json.loads((path / "config.json" if path.is_dir() else path).read_text())
    except (OSError, ValueError):
        return None
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = config.get(key) if isinstance(config, dict) else None
        if isinstance(value, int) and value > 0:
            return value
    return None


# --- what was achieved ------------------------------------------------------------------


def achieved(summary: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """p50/p90/max of the input and output tokens the successful requests had, from the
    locustfile's LLM summary (loadtests/llm_stats.py histograms)."""
    out = {}
    for name in ("input_tokens", "output_tokens"):
        hist = summary.get(name) or {}
        if hist.get("count"):
            out[name] = {
                "p50": hist.get("p50"),
                "p90": hist.get("p90"),
                "max": hist.get("max"),
                "mean": hist.get("mean"),
            }
    return out


def output_warning(target: float | None, got: Mapping[str, Any]) -> str | None:
    """A sentence when the achieved output lengths' median is far from `target`, the mean
    output length the workload's requests asked for."""
    p50 = (got.get("output_tokens") or {}).get("p50")
    if target is None or p50 is None or target <= 0:
        return None
    off = (p50 - target) / target
    if abs(off) <= OUTPUT_TOLERANCE:
        return None
    return (
        f"achieved output tokens p50 {p50:g} is {abs(off):.0%} {'below' if off < 0 else 'above'}"
        f" the {target:.3g} asked for on average (the model stopped early, or the API ignores "
        "the length)"
    )


def mean_output(requests: Sequence[WorkloadRequest]) -> float | None:
    """The mean output length the requests ask for (every turn)."""
    asked = [turn.max_tokens for r in requests for turn in r.turns]
    return sum(asked) / len(asked) if asked else None
