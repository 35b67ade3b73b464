"""`google.protobuf.FieldMask` in requests: `updateMask` and `readMask`.

Over REST a FieldMask is a query parameter: its proto3 JSON form, the paths joined by
commas in lowerCamelCase (`updateMask=displayName,labels`); the proto3 JSON parser also
takes the original snake_case names, and some clients repeat `updateMask.paths=...`.
Paths are checked against the resource's message (the SDK's own `aiplatform_v1` types): a
path that names no field is INVALID_ARGUMENT, as the FieldMask docs require ("an
invalid path ... is an error").
"""

from __future__ import annotations

from emulator.errors import invalid

MAX_PATHS = 100
MAX_PATH_CHARS = 256


def _camel(segment: str) -> str:
    head, *rest = segment.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _snake(segment: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in segment)


def paths_of(query, name: str) -> list[str]:
    """The mask's paths (lowerCamelCase, in order, without duplicates) from the query
    parameters `name` (comma-joined, maybe repeated) and `name.paths`, in either spelling
    (`updateMask`, `update_mask`)."""
    names = dict.fromkeys([name, ".".join(_snake(s) for s in name.split("."))])
    raw = [item for n in names for key in (n, f"{n}.paths") for item in query.getlist(key)]
    paths: list[str] = []
    for item in raw:
        for path in item.split(","):
            path = path.strip()
            if not path:
                continue
            if len(path) > MAX_PATH_CHARS or len(paths) >= MAX_PATHS:
                raise invalid(f"{name}: at most {MAX_PATHS} paths of {MAX_PATH_CHARS} characters.")
            camel = ".".join(_camel(s) for s in path.split("."))
            if camel not in paths:
                paths.append(camel)
    return paths


def _valid(path: str, descriptor) -> bool:
    """Each segment names a field of the message so far; below a free-form field
    (`google.protobuf.Struct`/`Value`, e.g. `pipelineSpec`) any keys are data."""
    for segment in path.split("."):
        if descriptor is None:
            return False
        if descriptor.full_name in ("google.protobuf.Struct", "google.protobuf.Value"):
            return True
        field = descriptor.fields_by_name.get(_snake(segment))
        if field is None:
            return False
        descriptor = field.message_type
        if descriptor is not None and descriptor.GetOptions().map_entry:
            descriptor = None  # a map: no sub-paths
    return True


def check_paths(paths: list[str], message_cls, field: str) -> None:
    """INVALID_ARGUMENT unless every path names a field of `message_cls` (a proto-plus
    class of `google.cloud.aiplatform_v1.types`)."""
    descriptor = message_cls.pb().DESCRIPTOR
    for path in paths:
        if not _valid(path, descriptor):
            raise invalid(f"{field}: {path!r} is not a field of {descriptor.name}.")


def apply_read_mask(resource: dict, paths: list[str]) -> dict:
    """Only the masked fields of a resource's JSON (nested paths keep their parents)."""
    if not paths:
        return resource
    out: dict = {}
    for path in paths:
        *parents, leaf = path.split(".")
        src, dst = resource, out
        for part in parents:
            src = src.get(part) if isinstance(src, dict) else None
            if not isinstance(src, dict):
                break
            dst = dst.setdefault(part, {})
        else:
            if isinstance(src, dict) and leaf in src:
                dst[leaf] = src[leaf]
    return out
