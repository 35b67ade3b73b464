"""Request bodies parsed strictly against the SDK's own `google.cloud.aiplatform_v1` protos.

Google's REST front end transcodes a JSON body into the method's request message with the
proto3 JSON parser before Vertex AI sees it: a name the message does not have, or a value
of the wrong JSON type, is answered 400 INVALID_ARGUMENT and nothing is stored. The
emulator does the same, once, in the routing layer (`emulator/app.py` names each route's
body message): every stored body passes `check_body` first, so no rule lives twice.

What proto3 JSON accepts is accepted: each field by its lowerCamelCase JSON name or its
proto name (GCPC's launchers send `deployed_model`), integers as JSON numbers or decimal
strings (GCPC sends replica counts as `"1"`; int64s print as strings), enums by name or
number, `null` for "unset", and anything under a `google.protobuf.Struct`/`Value`
(`pipelineSpec`, `parameterValues`, `metadata`).

The messages follow Google's front end as it is quoted in public reports for other
googleapis services (e.g. google-gemini/gemini-cli#13972, mnfst/llm-gateway#1858):
`Invalid JSON payload received. Unknown name "x" at 'deployed_model': Cannot find field.`
(no ` at '...'` for a name at the top of the body; paths in proto names with `[i]` list
indices; several problems joined by newlines), with a `google.rpc.BadRequest` detail
holding one field violation per problem. For a value of the wrong type the wording
`Invalid value at 'deployed_model.dedicated_resources.max_replica_count' (TYPE_INT32), "x"`
is the front end's as remembered from other services: unverified, as is that Vertex AI's
front end answers either form at all (its REST reference documents neither).
"""

from __future__ import annotations

import json
import math

from google.protobuf import descriptor as _d
from google.protobuf import json_format

from emulator.errors import ApiError

_TYPE_NAMES = {
    getattr(_d.FieldDescriptor, n): n for n in dir(_d.FieldDescriptor) if n.startswith("TYPE_")
}
_INT32 = {
    _d.FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    _d.FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _d.FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _d.FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    _d.FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    _d.FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    _d.FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _d.FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _d.FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    _d.FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOATS = (_d.FieldDescriptor.TYPE_FLOAT, _d.FieldDescriptor.TYPE_DOUBLE)
_ANY_JSON = ("google.protobuf.Struct", "google.protobuf.Value")
_STRING_WKT = ("google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask")
_PREFIX = "Invalid JSON payload received."


def _int_ok(value, bounds) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        if not value.is_integer():
            return False
        value = int(value)
    elif isinstance(value, str):
        try:
            number = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return False
        return _int_ok(number, bounds)
    return isinstance(value, int) and bounds[0] <= value <= bounds[1]


def _scalar_ok(value, field) -> bool:
    kind = field.type
    if kind in _INT32:
        return _int_ok(value, _INT32[kind])
    if kind in _FLOATS:
        if isinstance(value, bool):
            return False
        if isinstance(value, int | float):
            return True
        if isinstance(value, str):
            if value in ("NaN", "Infinity", "-Infinity"):
                return True
            try:
                return math.isfinite(float(value))
            except ValueError:
                return False
        return False
    if kind == _d.FieldDescriptor.TYPE_BOOL:
        return isinstance(value, bool)
    if kind in (_d.FieldDescriptor.TYPE_STRING, _d.FieldDescriptor.TYPE_BYTES):
        return isinstance(value, str)
    if kind == _d.FieldDescriptor.TYPE_ENUM:
        if isinstance(value, str):
            return field.enum_type.values_by_name.get(value) is not None
        return isinstance(value, int) and not isinstance(value, bool)
    return True


def _shown(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 200 else text[:200] + "..."


def _type_name(field) -> str:
    if field.type == _d.FieldDescriptor.TYPE_MESSAGE:
        return f"type.googleapis.com/{field.message_type.full_name}"
    if field.type == _d.FieldDescriptor.TYPE_ENUM:
        return f"type.googleapis.com/{field.enum_type.full_name}"
    return _TYPE_NAMES.get(field.type, "TYPE_UNKNOWN")


class _Walk:
    def __init__(self):
        self.problems: list[tuple[str, str]] = []

    def unknown(self, name: str, path: str, why: str = "Cannot find field.") -> None:
        where = f" at '{path}'" if path else ""
        self.problems.append((path, f'{_PREFIX} Unknown name "{name}"{where}: {why}'))

    def bad_value(self, path: str, field, value) -> None:
        self.problems.append(
            (path, f"Invalid value at '{path}' ({_type_name(field)}), {_shown(value)}")
        )

    def message(self, value, desc, path: str) -> None:
        if desc.full_name in (*_ANY_JSON, "google.protobuf.ListValue", "google.protobuf.Any"):
            return  # any JSON is data; an Any's fields are its type's (the parser checks)
        by_json = {f.json_name: f for f in desc.fields}
        for name, item in value.items():
            field = by_json.get(name) or desc.fields_by_name.get(name)
            if field is None:
                self.unknown(name, path)
                continue
            self.field(item, field, f"{path}.{field.name}" if path else field.name, name, path)

    def field(self, item, field, child: str, name: str, parent: str) -> None:
        if item is None:
            return  # proto3 JSON: null is the default value
        msg = field.message_type
        if msg is not None and msg.GetOptions().map_entry:
            if not isinstance(item, dict):
                self.bad_value(child, field, item)
                return
            value_field = msg.fields_by_name["value"]
            for key, entry in item.items():
                self.value(entry, value_field, f"{child}[{key}]")
            return
        if field.is_repeated:
            if not isinstance(item, list):
                self.bad_value(child, field, item)
                return
            for i, entry in enumerate(item):
                self.value(entry, field, f"{child}[{i}]")
            return
        if isinstance(item, list) and (
            msg is None or msg.full_name not in (*_ANY_JSON, "google.protobuf.ListValue")
        ):
            self.unknown(name, parent, "Proto field is not repeating, cannot start list.")
            return
        self.value(item, field, child)

    def value(self, item, field, path: str) -> None:
        msg = field.message_type
        if item is None:
            return
        if msg is None:
            if not _scalar_ok(item, field):
                self.bad_value(path, field, item)
            return
        if msg.full_name in _ANY_JSON:
            return
        if msg.full_name == "google.protobuf.ListValue":
            if not isinstance(item, list):
                self.bad_value(path, field, item)
            return
        if msg.full_name in _STRING_WKT:
            if not isinstance(item, str):
                self.bad_value(path, field, item)
            return
        if msg.full_name.startswith("google.protobuf.") and msg.full_name.endswith("Value"):
            if not _scalar_ok(item, msg.fields_by_name["value"]):  # a wrapper: its scalar
                self.bad_value(path, field, item)
            return
        if not isinstance(item, dict):
            self.bad_value(path, field, item)
            return
        self.message(item, msg, path)


def problems(body: dict, message_cls, at: str = "") -> list[tuple[str, str]]:
    """Every (field path, description) wrong with `body` as the JSON of `message_cls` (a
    proto-plus class of `aiplatform_v1.types`, or a `_pb2` message class) at request field
    `at` ('' for a body that is the whole request)."""
    pb_cls = message_cls.pb() if hasattr(message_cls, "pb") else message_cls
    walk = _Walk()
    walk.message(body, pb_cls.DESCRIPTOR, at)
    if walk.problems:
        return walk.problems
    try:  # what the walk does not look at (timestamp syntax, base64, Any): the parser's
        json_format.ParseDict(body, pb_cls(), ignore_unknown_fields=False)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        return [(at, f"{_PREFIX} {str(exc).splitlines()[0][:500].rstrip('.')}.")]
    return []


def check_body(body: dict, message_cls, at: str = "") -> None:
    """400 INVALID_ARGUMENT naming every unknown field and wrongly typed value in `body`."""
    found = problems(body, message_cls, at)
    if not found:
        return
    violations = [{"field": f, "description": d} if f else {"description": d} for f, d in found]
    raise ApiError(
        "INVALID_ARGUMENT",
        "\n".join(d for _, d in found),
        details=[
            {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations}
        ],
    )
