"""Request bodies in either spelling of proto3 JSON.

Google's REST front ends parse bodies with the proto3 JSON parser, which accepts each field
by its lowerCamelCase JSON name and by its original proto name: GCPC's launchers send
`{"deployed_model": {"dedicated_resources": ...}, "traffic_split": ...}` and
`{"display_name": ...}`. The emulator's code reads lowerCamelCase, so bodies are
normalised first. Keys inside map fields (`labels`, `trafficSplit`, a pipeline job's
`parameterValues` and `inputArtifacts`) and free-form structs (`metadata`, `parameters`,
`instances`, `pipelineSpec`) are data, not field names, and stay as they are.
"""

from __future__ import annotations

_DATA_FIELDS = frozenset(
    {
        "labels",
        "trafficSplit",
        "metadata",
        "parameters",
        "instances",
        "pipelineSpec",
        "parameterValues",
        "inputArtifacts",
    }
)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def camel_case_fields(value):
    """`value` with every field name in lowerCamelCase (see the module docstring)."""
    if isinstance(value, list):
        return [camel_case_fields(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        name = _camel(key) if isinstance(key, str) and "_" in key else key
        out[name] = item if name in _DATA_FIELDS else camel_case_fields(item)
    return out
