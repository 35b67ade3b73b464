"""The team's expectations (`--expect FILE`): JSONL, one prompt per line with its checks.

    {"prompt": "The capital of France is", "contains": "Paris"}
    {"prompt": "Reply in JSON", "json_schema": {"type": "object"}, "max_tokens": 64}

Keys: `prompt` (required, a non-empty string); `name` (optional label); `max_tokens` (the
request's output budget, default the phase's); and at least one check:
`equals` (the answer, stripped, equals the string), `contains` / `not_contains` (a string or
a list of strings), `regex` (Python `re.search`), `json_schema` (the answer parses as JSON
and validates against the schema, with the `jsonschema` library), `max_output_tokens` /
`min_output_tokens` (integers). Blank lines and lines starting with # are skipped. A bad
line (not JSON, an unknown key or check, a bad regex or schema) is refused naming the line,
before anything is created.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_FILE_BYTES = 1_000_000
MAX_EXPECTATIONS = 200
MAX_TOKENS_LIMIT = 4096
STRING_CHECKS = ("equals", "regex")
LIST_CHECKS = ("contains", "not_contains")
COUNT_CHECKS = ("max_output_tokens", "min_output_tokens")
CHECKS = (*STRING_CHECKS, *LIST_CHECKS, "json_schema", *COUNT_CHECKS)
KEYS = ("prompt", "name", "max_tokens", *CHECKS)


class ExpectationError(ValueError):
    """A bad expectations file; the message names the file and line."""


@dataclass(frozen=True)
class Expectation:
    """One prompt and its checks, as read from line `line` of the file."""

    line: int
    prompt: str
    checks: Mapping[str, Any]
    name: str = ""
    max_tokens: int | None = None
    _regex: re.Pattern | None = field(default=None, compare=False, repr=False)

    def judge(self, text: str, output_tokens: int | None) -> list[str]:
        """The checks this answer fails, each described in a few words (empty: all pass)."""
        failed = []
        answer = text.strip()
        c = self.checks
        if "equals" in c and answer != c["equals"]:
            failed.append(f"equals {c['equals']!r}")
        for needle in c.get("contains", ()):
            if needle not in text:
                failed.append(f"contains {needle!r}")
        for needle in c.get("not_contains", ()):
            if needle in text:
                failed.append(f"not_contains {needle!r}")
        if self._regex is not None and not self._regex.search(text):
            failed.append(f"regex {self._regex.pattern!r}")
        if "json_schema" in c:
            failed += _json_schema_failures(answer, c["json_schema"])
        for name in COUNT_CHECKS:
            if name not in c:
                continue
            if output_tokens is None:
                failed.append(f"{name} {c[name]} (the answer's token count is unknown)")
            elif (name == "max_output_tokens" and output_tokens > c[name]) or (
                name == "min_output_tokens" and output_tokens < c[name]
            ):
                failed.append(f"{name} {c[name]} (got {output_tokens})")
        return failed


def _json_schema_failures(answer: str, schema: Mapping) -> list[str]:
    import jsonschema

    try:
        value = json.loads(answer)
    except json.JSONDecodeError:
        return ["json_schema (the answer is not JSON)"]
    error = jsonschema.exceptions.best_match(
        jsonschema.validators.validator_for(schema)(schema).iter_errors(value)
    )
    return [] if error is None else [f"json_schema ({error.message})"]


def _count(name: str, value: Any, where: str, low: int = 0, high: int = MAX_TOKENS_LIMIT) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ExpectationError(
            f"{where}: {name} must be an integer in {low}..{high}, got {value!r}"
        )
    return value


def parse_line(raw: str, where: str, line: int) -> Expectation:
    """One line of the file; ExpectationError naming `where` (file:line) if it is bad."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ExpectationError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ExpectationError(f"{where}: a line must be a JSON object")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ExpectationError(
            f"{where}: unknown key(s) {unknown}; the checks are {', '.join(CHECKS)}"
        )
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ExpectationError(f"{where}: prompt must be a non-empty string")
    checks: dict[str, Any] = {}
    for name in STRING_CHECKS:
        if name in data:
            if not isinstance(data[name], str):
                raise ExpectationError(f"{where}: {name} must be a string")
            checks[name] = data[name]
    for name in LIST_CHECKS:
        if name in data:
            value = [data[name]] if isinstance(data[name], str) else data[name]
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, str) and v for v in value)
            ):
                raise ExpectationError(f"{where}: {name} must be a string or a list of strings")
            checks[name] = value
    regex = None
    if "regex" in checks:
        try:
            regex = re.compile(checks["regex"])
        except re.error as exc:
            raise ExpectationError(f"{where}: bad regex {checks['regex']!r} ({exc})") from None
    if "json_schema" in data:
        checks["json_schema"] = _schema(data["json_schema"], where)
    for name in COUNT_CHECKS:
        if name in data:
            checks[name] = _count(name, data[name], where)
    if not checks:
        raise ExpectationError(f"{where}: no check; give one of {', '.join(CHECKS)}")
    name = data.get("name", "")
    if not isinstance(name, str):
        raise ExpectationError(f"{where}: name must be a string")
    max_tokens = None
    if "max_tokens" in data:
        max_tokens = _count("max_tokens", data["max_tokens"], where, low=1)
    return Expectation(line, prompt, checks, name, max_tokens, regex)


def _schema(schema: Any, where: str) -> dict:
    import jsonschema

    if not isinstance(schema, dict):
        raise ExpectationError(f"{where}: json_schema must be a JSON object (a JSON Schema)")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise ExpectationError(f"{where}: bad json_schema ({exc.message})") from None
    return schema


def parse_expectations(text: str, source: str) -> list[Expectation]:
    """Every expectation in `text` (the file read from `source`); ExpectationError naming
    the line of the first bad one, or when there is none or too many."""
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise ExpectationError(f"{source}: larger than {MAX_FILE_BYTES} bytes")
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        out.append(parse_line(raw, f"{source} line {number}", number))
        if len(out) > MAX_EXPECTATIONS:
            raise ExpectationError(f"{source}: more than {MAX_EXPECTATIONS} expectations")
    if not out:
        raise ExpectationError(f"{source}: holds no expectation")
    return out


def read_expectations(uri: str) -> list[Expectation]:
    """The expectations at a local path or gs:// URI; ExpectationError when bad."""
    from correctness.files import read_text

    return parse_expectations(read_text(uri, MAX_FILE_BYTES), uri)
