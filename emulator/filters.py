"""The list `filter` expressions the SDK sends (AIP-160 subset).

Supported: terms joined by `AND` (case-insensitive) or whitespace, each one of
`display_name="x"`, `displayName="x"`, `labels.k="v"`, `labels.k:*` (has label),
`labels.k!="v"`, `name="..."`; values quoted with `"`/`'` or bare. `OR`, `NOT` and
parentheses are rejected with INVALID_ARGUMENT rather than silently misread.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from emulator.errors import invalid

_TERM = re.compile(
    r"""\s*(?P<key>[A-Za-z_][\w.\-]*)\s*(?P<op>!=|=|:)\s*
        (?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s()"']+)\s*""",
    re.X,
)
_AND = re.compile(r"AND\s+", re.I)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _field(resource: dict, key: str) -> str | None:
    # Stored data may predate validation (a list for labels, a number for a value): such a
    # resource simply does not match, it never breaks the whole list.
    if key.startswith("labels."):
        labels = resource.get("labels")
        value = labels.get(key[len("labels.") :]) if isinstance(labels, dict) else None
        return value if isinstance(value, str) else None
    if key in ("display_name", "displayName"):
        return _text(resource.get("displayName"))
    if key == "name":
        return _text(resource.get("name"))
    raise invalid(f"Unsupported filter field: {key!r}.")


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def parse(expression: str | None) -> Callable[[dict], bool]:
    """Compile a filter into a predicate over resource JSON; raise INVALID_ARGUMENT."""
    if not expression or not expression.strip():
        return lambda resource: True
    terms: list[tuple[str, str, str]] = []
    pos, text = 0, expression.strip()
    while pos < len(text):
        match = _TERM.match(text, pos)
        if not match or match.group("key").upper() in ("OR", "NOT"):
            raise invalid(f"Unsupported or malformed filter: {expression!r}.")
        terms.append((match["key"], match["op"], _unquote(match["value"])))
        pos = match.end()
        sep = _AND.match(text, pos)
        if sep:
            pos = sep.end()
    for key, _, _ in terms:
        _field({}, key)  # validate field names up front

    def predicate(resource: dict) -> bool:
        for key, op, value in terms:
            actual = _field(resource, key)
            if op == ":":
                ok = actual is not None and (value == "*" or actual == value)
            elif op == "=":
                ok = actual == value
            else:
                ok = actual != value
            if not ok:
                return False
        return True

    return predicate
