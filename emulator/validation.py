"""Vertex AI's checks on what the emulator stores: every refusal is INVALID_ARGUMENT, raised
before anything is written.

Label rules are GCP's (https://cloud.google.com/resource-manager/docs/labels-overview):
at most 64 labels; keys 1-63 characters, values 0-63, lowercase letters (international
ones too), digits, `_` and `-`; keys start with a lowercase or international letter.
The message is the one Vertex AI answers with for `endpoint.labels` (quoted in public
reports, e.g. statmike/vertex-ai-mlops#6); that it is the same for `model.labels` is
assumed, not verified.
"""

from __future__ import annotations

import json
import unicodedata

from emulator.errors import invalid

MAX_LABELS = 64
MAX_LABEL_CHARS = 63
MAX_LABEL_BYTES = 128
# "The display name can be up to 128 characters long and can consist of any UTF-8
# characters" (Vertex AI REST reference, Model.display_name / Endpoint.display_name).
MAX_DISPLAY_NAME_CHARS = 128

LABELS_MESSAGE = (
    "There can be no more than 64 labels attached to a single resource. Label keys and "
    "values can only contain lowercase letters, numbers, dashes and underscores. Label keys "
    "must start with a letter or number, must be less than 64 characters in length, and must "
    "be less that 128 bytes in length when encoded in UTF-8. Label values must be less than "
    "64 characters in length, and must be less that 128 bytes in length when encoded in UTF-8."
)


def _letter(ch: str) -> bool:
    # Ll: lowercase letters; Lo: letters without case (international characters).
    return unicodedata.category(ch) in ("Ll", "Lo")


def _label_char(ch: str) -> bool:
    return _letter(ch) or unicodedata.category(ch) == "Nd" or ch in "_-"


def label_problem(key: object, value: object) -> str | None:
    """What is wrong with one label, or None."""
    if not isinstance(key, str) or not isinstance(value, str):
        return "keys and values must be strings"
    if not 1 <= len(key) <= MAX_LABEL_CHARS or len(key.encode()) >= MAX_LABEL_BYTES:
        return "key length"
    if not _letter(key[0]) or not all(_label_char(c) for c in key):
        return "key characters"
    if len(value) > MAX_LABEL_CHARS or len(value.encode()) >= MAX_LABEL_BYTES:
        return "value length"
    if not all(_label_char(c) for c in value):
        return "value characters"
    return None


def labels_problems(labels: object) -> list[str]:
    """Every broken rule of a `labels` map (empty when it is valid)."""
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return ["labels must be a map of strings to strings"]
    problems = []
    if len(labels) > MAX_LABELS:
        problems.append(f"{len(labels)} labels (at most {MAX_LABELS})")
    for key, value in labels.items():
        problem = label_problem(key, value)
        if problem:
            problems.append(f"{str(key)[:70]!r}: {problem}")
    return problems


def check_labels(labels: object, field: str) -> None:
    """INVALID_ARGUMENT with Vertex AI's message if `labels` breaks a rule."""
    if labels_problems(labels):
        raise invalid(f"List of found errors:\t1.Field: {field}; Message: {LABELS_MESSAGE}\t")


def check_display_name(value: object, field: str) -> None:
    """A display name is required, a string, at most 128 characters."""
    if not isinstance(value, str) or not value:
        raise invalid(f"{field} is required.")
    if len(value) > MAX_DISPLAY_NAME_CHARS:
        raise invalid(f"{field} must be at most {MAX_DISPLAY_NAME_CHARS} characters long.")


def _string_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def check_container_spec(spec: object) -> None:
    """`containerSpec`: command and args are lists of strings, env a list of name/value."""
    if spec is None:
        return
    if not isinstance(spec, dict):
        raise invalid("model.container_spec must be an object.")
    for key in ("command", "args"):
        if key in spec and not _string_list(spec[key]):
            raise invalid(f"model.container_spec.{key} must be a list of strings.")
    env = spec.get("env", [])
    if not isinstance(env, list) or not all(
        isinstance(e, dict)
        and isinstance(e.get("name"), str)
        and e.get("name")
        and isinstance(e.get("value", ""), str)
        for e in env
    ):
        raise invalid("model.container_spec.env must be a list of {name, value} strings.")
    for key in ("predictRoute", "healthRoute", "imageUri"):
        if key in spec and not isinstance(spec[key], str):
            raise invalid(f"model.container_spec.{key} must be a string.")


def stored_problems(resource: dict) -> list[str]:
    """Rules a stored resource breaks (state written by an older emulator)."""
    problems = [f"labels: {p}" for p in labels_problems(resource.get("labels"))]
    spec = resource.get("containerSpec")
    try:
        check_container_spec(spec)
    except Exception as exc:  # ApiError: report its message
        problems.append(str(exc))
    return problems


def renderable(resource: dict) -> dict:
    """A stored resource as it can be answered: labels that an older emulator stored as
    something other than a map of strings would make every client's parse of the whole
    list fail; answer a non-map as no labels and other values as strings (the stored
    document keeps them as they were, and `stored_problems` reports them)."""
    labels = resource.get("labels")
    if labels is None or (
        isinstance(labels, dict) and all(isinstance(v, str) for v in labels.values())
    ):
        return resource
    out = dict(resource)
    if isinstance(labels, dict):
        out["labels"] = {
            str(k): v if isinstance(v, str) else json.dumps(v) for k, v in labels.items()
        }
    else:
        out.pop("labels")
    return out
