"""List `filter`, `orderBy`, `pageSize` and `pageToken` (AIP-160, AIP-132, AIP-158), as
each list's request message documents them (`aiplatform_v1` ListModelsRequest,
ListModelVersionsRequest, ListEndpointsRequest, ListPipelineJobsRequest field docs).

Filter grammar (AIP-160; a small recursive-descent parser): restrictions
`field OP value` with OP one of `= != < <= > >= :`, joined by `AND`, by whitespace (an
implicit AND) or by `OR` (which binds tighter than AND, as AIP-160 says), grouped with
parentheses; values quoted (`"..."`, `'...'`) or bare. Field names in snake_case or
camelCase. Per list, only the fields and operators its docs name:

* models: `model` (the id) `=`/`!=`, `display_name` `=`/`!=`, `labels`, `base_model_name` `=`;
* model versions: `labels`;
* endpoints: `endpoint` (the id) `=`/`!=`, `display_name` `=`/`!=`, `labels`,
  `base_model_name` `=`;
* pipeline jobs: `pipeline_name` `=`/`!=`, `display_name`, `pipeline_job_user_id` (the
  job id), `template_uri`, `template_metadata.version` with `=`/`!=`/`:`, `state`
  `=`/`!=` (a PipelineState name), `create_time`, `update_time`, `end_time` with every
  comparison (RFC 3339 values), `labels`.

`labels`: `labels.key=value`, `labels.key!=value`, `labels.key:*` and `labels:key` (key
exists), `labels."a key"` for a key with a space. `:` on a string field is AIP-160's
wildcard match (`display_name:"conf-*"`, `*` any run of characters; without `*`,
equality). Anything else is INVALID_ARGUMENT naming it, never silently misread: another
field or operator, `NOT` and `-` (AIP-160 has them; no list documents them), a bare
value (a text search), `=` on a field documented with `:` only. Whether Vertex AI also
accepts `OR` and parentheses on the lists whose docs do not mention them (all but
pipeline jobs) is not documented: the emulator accepts AIP-160's grammar on all
(unverified).

`orderBy`: `field [asc|desc]`, comma-separated, the fields each list documents; the
pipeline jobs' default is `create_time desc` (documented), other lists keep their
stored order (model versions: by version id). `pageSize`: negative is INVALID_ARGUMENT,
0 or unset is 100, more than 1000 is 1000 (AIP-158 coerces; neither bound is documented
for Vertex AI: the emulator's choice). A `pageToken` is bound to the list, filter and
orderBy that made it: reused with another, it is INVALID_ARGUMENT (AIP-158).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from emulator.errors import invalid

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
EQ = frozenset({"=", "!="})
WILD = frozenset({"=", "!=", ":"})
ALL = frozenset({"=", "!=", "<", "<=", ">", ">="})
PIPELINE_STATES = frozenset(
    {
        "PIPELINE_STATE_UNSPECIFIED",
        "PIPELINE_STATE_QUEUED",
        "PIPELINE_STATE_PENDING",
        "PIPELINE_STATE_RUNNING",
        "PIPELINE_STATE_SUCCEEDED",
        "PIPELINE_STATE_FAILED",
        "PIPELINE_STATE_CANCELLING",
        "PIPELINE_STATE_CANCELLED",
        "PIPELINE_STATE_PAUSED",
    }
)


def _last_segment(resource: dict) -> str:
    return str(resource.get("name", "")).rsplit("/", 1)[-1].split("@")[0]


def _key(*path: str) -> Callable[[dict], object]:
    def get(resource: dict):
        value = resource
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        return value

    return get


@dataclass(frozen=True)
class Field:
    get: Callable[[dict], object]
    ops: frozenset
    kind: str = "string"  # string | enum | time


@dataclass(frozen=True)
class ListSpec:
    method: str
    fields: dict[str, Field]
    order: dict[str, str]  # orderBy field -> JSON key
    default_order: tuple[tuple[str, bool], ...] = ()
    labels: bool = True


_LABELS_ONLY: dict[str, Field] = {}
LISTS = {
    "models": ListSpec(
        "ListModels",
        {
            "model": Field(_last_segment, EQ),
            "display_name": Field(_key("displayName"), EQ),
            "base_model_name": Field(_key("baseModelName"), frozenset({"="})),
        },
        {"display_name": "displayName", "create_time": "createTime", "update_time": "updateTime"},
    ),
    "modelVersions": ListSpec(
        "ListModelVersions",
        _LABELS_ONLY,
        {"create_time": "versionCreateTime", "update_time": "versionUpdateTime"},
    ),
    "endpoints": ListSpec(
        "ListEndpoints",
        {
            "endpoint": Field(_last_segment, EQ),
            "display_name": Field(_key("displayName"), EQ),
            "base_model_name": Field(_key("baseModelName"), frozenset({"="})),
        },
        {"display_name": "displayName", "create_time": "createTime", "update_time": "updateTime"},
    ),
    "pipelineJobs": ListSpec(
        "ListPipelineJobs",
        {
            "pipeline_name": Field(_key("pipelineSpec", "pipelineInfo", "name"), EQ),
            "display_name": Field(_key("displayName"), WILD),
            "pipeline_job_user_id": Field(_last_segment, WILD),
            "state": Field(_key("state"), EQ, "enum"),
            "create_time": Field(_key("createTime"), ALL, "time"),
            "update_time": Field(_key("updateTime"), ALL, "time"),
            "end_time": Field(_key("endTime"), ALL, "time"),
            "template_uri": Field(_key("templateUri"), WILD),
            "template_metadata.version": Field(_key("templateMetadata", "version"), WILD),
        },
        {
            "create_time": "createTime",
            "update_time": "updateTime",
            "end_time": "endTime",
            "start_time": "startTime",
        },
        (("createTime", True),),
    ),
}

# -- lexer ----------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<paren>[()])
      | (?P<op><=|>=|!=|=|<|>|:)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<word>[^\s()"'<>=!:]+)
    )""",
    re.X,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise invalid(f"Unsupported or malformed filter {text!r} at {text[pos:][:40]!r}.")
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.append((kind, value))
        pos = m.end()
    return out


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _time(value: str, where: str) -> _dt.datetime:
    try:
        parsed = _dt.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise invalid(f"Filter {where}: {value!r} is not an RFC 3339 timestamp.") from None
    if parsed.tzinfo is None:
        raise invalid(f"Filter {where}: {value!r} has no time zone offset (RFC 3339).")
    return parsed


def _glob(pattern: str) -> re.Pattern:
    return re.compile(".*".join(re.escape(p) for p in pattern.split("*")), re.S)


class _Parser:
    def __init__(self, text: str, spec: ListSpec):
        self.text, self.spec = text, spec
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise invalid(f"Filter {self.text!r} ends too early.")
        self.i += 1
        return tok

    def parse(self) -> Callable[[dict], bool]:
        pred = self.expression()
        if self.peek() is not None:
            raise invalid(f"Unsupported or malformed filter {self.text!r} at {self.peek()[1]!r}.")
        return pred

    def expression(self):
        parts = [self.sequence()]
        while self.peek() == ("word", "AND"):
            self.take()
            parts.append(self.sequence())
        return lambda r: all(p(r) for p in parts)

    def sequence(self):
        parts = [self.factor()]
        while (tok := self.peek()) is not None and tok != ("paren", ")") and tok[1] != "AND":
            parts.append(self.factor())
        return lambda r: all(p(r) for p in parts)

    def factor(self):
        parts = [self.term()]
        while self.peek() == ("word", "OR"):
            self.take()
            parts.append(self.term())
        return lambda r: any(p(r) for p in parts)

    def term(self):
        tok = self.peek()
        if tok is not None and tok[0] == "word" and (tok[1] == "NOT" or tok[1].startswith("-")):
            raise invalid(
                f"Unsupported filter {self.text!r}: negation (NOT, -) is not documented for "
                f"{self.spec.method}; use != instead."
            )
        if tok == ("paren", "("):
            self.take()
            inner = self.expression()
            if self.take() != ("paren", ")"):
                raise invalid(f"Filter {self.text!r}: a parenthesis is not closed.")
            return inner
        return self.restriction()

    def member(self) -> tuple[str, str | None]:
        """(field, label key or None)."""
        kind, word = self.take()
        if kind != "word" or word in ("AND", "OR"):
            raise invalid(f"Unsupported or malformed filter {self.text!r} at {word!r}.")
        if word.endswith(".") and self.peek() and self.peek()[0] == "string":
            word += self.take()[1]  # labels."a key"
            if word.startswith("labels."):
                return "labels", word[len("labels.") :]
        if word.startswith("labels."):
            return "labels", word[len("labels.") :]
        return ".".join(_snake(p) for p in word.split(".")), None

    def restriction(self):
        name, label = self.member()
        tok = self.peek()
        if tok is None or tok[0] != "op":
            raise invalid(
                f"Unsupported filter {self.text!r}: {name!r} without a comparison (a text "
                "search) is not supported."
            )
        op = self.take()[1]
        kind, value = self.take()
        if kind not in ("word", "string"):
            raise invalid(f"Filter {self.text!r}: {op} needs a value.")
        if name == "labels" and self.spec.labels:
            return self._labels(label, op, value)
        field = self.spec.fields.get(name)
        if field is None:
            known = ", ".join([*self.spec.fields, "labels"])
            raise invalid(
                f"Unsupported filter field {name!r} for {self.spec.method} (supported: {known})."
            )
        if op not in field.ops:
            raise invalid(
                f"Unsupported filter {self.text!r}: {name} supports "
                f"{', '.join(sorted(field.ops))} in {self.spec.method}, not {op}."
            )
        if field.kind == "time":
            wanted = _time(value, name)
            compare = {
                "=": wanted.__eq__,
                "!=": wanted.__ne__,
                "<": wanted.__gt__,
                "<=": wanted.__ge__,
                ">": wanted.__lt__,
                ">=": wanted.__le__,
            }[op]

            def by_time(r):
                actual = field.get(r)
                if not isinstance(actual, str):
                    return False
                try:
                    return bool(compare(_dt.datetime.fromisoformat(actual)))
                except ValueError:
                    return False

            return by_time
        if field.kind == "enum" and value not in PIPELINE_STATES:
            raise invalid(f"Filter {name}: {value!r} is not a PipelineState.")
        return _string_test(field.get, op, value)

    def _labels(self, key: str | None, op: str, value: str):
        if key is None:  # `labels:key`
            if op != ":":
                raise invalid(f"Unsupported filter {self.text!r}: labels:KEY or labels.KEY=V.")

            def has(r):
                labels = r.get("labels")
                return isinstance(labels, dict) and value in labels

            return has
        if op not in WILD:
            raise invalid(f"Unsupported filter {self.text!r}: labels support =, != and :.")

        def get(r):
            labels = r.get("labels")
            label = labels.get(key) if isinstance(labels, dict) else None
            return label if isinstance(label, str) else None

        if op == ":" and value == "*":
            return lambda r: get(r) is not None
        return _string_test(get, op, value, missing_is_empty=False)


def _string_test(get, op: str, value: str, missing_is_empty: bool = True):
    def actual(r):
        v = get(r)
        if v is None and missing_is_empty:
            return ""  # proto3: an unset string is ""
        return v if isinstance(v, str) else None

    if op == "=":
        return lambda r: actual(r) == value
    if op == "!=":
        return lambda r: actual(r) is not None and actual(r) != value
    pattern = _glob(value)
    return lambda r: isinstance(actual(r), str) and pattern.fullmatch(actual(r)) is not None


def parse(expression: str | None, kind: str = "endpoints") -> Callable[[dict], bool]:
    """Compile a filter of list `kind` into a predicate over resource JSON;
    INVALID_ARGUMENT for anything the list does not support."""
    if not expression or not expression.strip():
        return lambda resource: True
    if len(expression) > 2000:
        raise invalid("filter is at most 2000 characters (emulator's bound).")
    return _Parser(expression, LISTS[kind]).parse()


def order_by(text: str | None, kind: str) -> list[tuple[str, bool]]:
    """`orderBy` as (JSON key, descending) pairs; the list's default when empty."""
    spec = LISTS[kind]
    out = []
    for item in (text or "").split(","):
        words = item.split()
        if not words:
            continue
        field = _snake(words[0])
        if field not in spec.order or words[1:] not in ([], ["asc"], ["desc"]):
            raise invalid(
                f"Unsupported order_by {text!r} for {spec.method}: "
                f"{', '.join(spec.order)}, each optionally asc or desc."
            )
        out.append((spec.order[field], words[1:] == ["desc"]))
    return out or list(spec.default_order)


def _fingerprint(scope: str, query) -> str:
    what = [scope, query.get("filter") or "", query.get("orderBy") or query.get("order_by") or ""]
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:16]


def _page_size(query) -> int:
    raw = query.get("pageSize") or query.get("page_size") or "0"
    try:
        size = int(raw)
    except ValueError:
        raise invalid(f"Invalid page_size {raw!r}: not an integer.") from None
    if size < 0:
        raise invalid(f"Invalid page_size {size}: it must not be negative.")
    return min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _offset(token: str, fingerprint: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
        offset, bound = int(data["o"]), data["q"]
    except (ValueError, KeyError, TypeError):
        raise invalid(f"Invalid page_token {token[:100]!r}.") from None
    if bound != fingerprint or offset < 0:
        raise invalid(
            "Invalid page_token: it was issued for another list request (the filter, "
            "order_by and parent must stay the same across pages)."
        )
    return offset


def select(items: list[dict], key: str, kind: str, query, scope: str) -> dict:
    """One page of `items` (resource JSON) for a list request: filtered, ordered and
    paged as `query` (`filter`, `orderBy`, `pageSize`, `pageToken`) asks; `scope` (the
    parent) binds the page token too."""
    query = query if query is not None else {}
    pred = parse(query.get("filter"), kind)
    order = order_by(query.get("orderBy") or query.get("order_by"), kind)
    size = _page_size(query)
    fingerprint = _fingerprint(scope, query)
    token = query.get("pageToken") or query.get("page_token") or ""
    start = _offset(token, fingerprint) if token else 0
    found = [item for item in items if pred(item)]
    for json_key, descending in reversed(order):
        found.sort(key=lambda d, k=json_key: str(d.get(k) or ""), reverse=descending)
    out: dict = {key: found[start : start + size]}
    if start + size < len(found):
        raw = json.dumps({"o": start + size, "q": fingerprint}).encode()
        out["nextPageToken"] = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return out
