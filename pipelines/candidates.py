"""Right-sizing candidates: the machine shapes one run deploys the model on, one by one.

A candidate is written `MACHINE[,ACCELERATOR:COUNT][,replicas=N]` on the command line
(`--candidate n1-standard-8,NVIDIA_TESLA_T4:1,replicas=2`), or as one object of a JSON list
in a file (`--candidates FILE`):

    [{"machine_type": "n1-standard-4"},
     {"machine_type": "g2-standard-8", "accelerator_type": "NVIDIA_L4",
      "accelerator_count": 1, "replicas": 2}]

Each becomes the pipeline's `candidates` list item (the four keys below, always all four),
over which the right-sizing graph fans out with `dsl.ParallelFor`. Checked here, before
anything is created, with the same rules as a single run's machine parameters.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from components.runtime.candidate_labels import key as candidate_key
from pipelines.validation import InputError, accelerator, check, replicas

KEYS = ("machine_type", "accelerator_type", "accelerator_count", "replicas")
# GPU quota is finite and every candidate is a paid endpoint: a typo'd list fails here.
MAX_CANDIDATES = 16
MAX_FILE_BYTES = 64 * 1024
_MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_ACCELERATOR_PART = re.compile(r"^([A-Z][A-Z0-9_]*):([0-9]+)$")
_REPLICAS_PART = re.compile(r"^replicas=([0-9]+)$")


def parse_spec(text: str) -> dict[str, Any]:
    """`MACHINE[,ACCELERATOR:COUNT][,replicas=N]` -> a checked candidate."""
    parts = [p.strip() for p in text.split(",")]
    candidate: dict[str, Any] = {"machine_type": parts[0]}
    for part in parts[1:]:
        if m := _ACCELERATOR_PART.match(part):
            check("accelerator_type" not in candidate, f"candidate {text!r}: two accelerators")
            candidate["accelerator_type"], candidate["accelerator_count"] = m[1], int(m[2])
        elif m := _REPLICAS_PART.match(part):
            check("replicas" not in candidate, f"candidate {text!r}: replicas given twice")
            candidate["replicas"] = int(m[1])
        else:
            raise InputError(
                f"candidate {text!r}: {part!r} is neither ACCELERATOR:COUNT (e.g. "
                "NVIDIA_TESLA_T4:1) nor replicas=N; the form is "
                "MACHINE[,ACCELERATOR:COUNT][,replicas=N]"
            )
    return check_candidate(candidate, text)


def check_candidate(raw: Any, where: str) -> dict[str, Any]:
    """One candidate object -> the four keys, each checked (InputError naming `where`)."""
    check(isinstance(raw, dict), f"candidate {where}: expected an object, got {raw!r}")
    unknown = set(raw) - set(KEYS)
    check(not unknown, f"candidate {where}: unknown key(s) {', '.join(sorted(unknown))}")
    candidate = {
        "machine_type": raw.get("machine_type", ""),
        "accelerator_type": raw.get("accelerator_type", ""),
        "accelerator_count": raw.get("accelerator_count", 0),
        "replicas": raw.get("replicas", 1),
    }
    check(
        isinstance(candidate["machine_type"], str)
        and bool(_MACHINE_TYPE.match(candidate["machine_type"])),
        f"candidate {where}: invalid machine type {candidate['machine_type']!r}: lowercase "
        "letters, digits and '-', starting with a letter (e.g. n1-standard-8)",
    )
    for key in ("accelerator_count", "replicas"):
        value = candidate[key]
        check(
            isinstance(value, int) and not isinstance(value, bool),
            f"candidate {where}: {key} must be an integer, got {value!r}",
        )
    check(
        isinstance(candidate["accelerator_type"], str),
        f"candidate {where}: accelerator_type must be a string",
    )
    try:
        accelerator(candidate["accelerator_type"], candidate["accelerator_count"])
        replicas(candidate["replicas"], candidate["replicas"])
    except InputError as exc:
        raise InputError(f"candidate {where}: {exc}") from None
    return candidate


def read_file(path: str | Path) -> list[dict[str, Any]]:
    """A JSON list of candidate objects (at most MAX_FILE_BYTES)."""
    p = Path(path)
    check(p.is_file(), f"--candidates {str(path)!r} is not a file")
    check(p.stat().st_size <= MAX_FILE_BYTES, f"--candidates {str(path)!r} is over 64 KiB")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"--candidates {str(path)!r} is not JSON: {exc}") from None
    check(isinstance(data, list), f"--candidates {str(path)!r}: expected a JSON list")
    return [check_candidate(item, f"#{i + 1} of {path}") for i, item in enumerate(data)]


def check_candidates(candidates: list[Any]) -> list[dict[str, Any]]:
    """The pipeline's `candidates` parameter: [] (a single run) or 2..MAX distinct ones."""
    check(isinstance(candidates, list), "candidates must be a list")
    checked = [check_candidate(c, f"#{i + 1}") for i, c in enumerate(candidates)]
    check(
        len(checked) != 1,
        "one candidate is a plain run: give --machine-type and --accelerator instead, or two "
        "or more candidates to compare",
    )
    check(
        len(checked) <= MAX_CANDIDATES,
        f"{len(checked)} candidates: at most {MAX_CANDIDATES} (each is a paid endpoint)",
    )
    keys = [candidate_key(c) for c in checked]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    check(not twice, f"candidate(s) given twice: {', '.join(twice)}")
    return checked
