"""A right-sizing candidate's name and labels (pipelines/candidates.py parses candidates).

A candidate is `{"machine_type", "accelerator_type", "accelerator_count", "replicas"}`; its
endpoint carries the run's labels plus `deploytest-candidate=<key>`, so that a person (and
the recommendation) can tell the fan-out's endpoints apart; clean-up still finds every one
by the run label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.runtime.make_labels import MAX_LABEL_LENGTH, label_value

CANDIDATE_LABEL_KEY = "deploytest-candidate"


def key(candidate: Mapping[str, Any]) -> str:
    """A short name that tells candidates apart, usable as a label value (lowercase, <= 63):
    `n1-standard-8`, `g2-standard-8-nvidia-l4x1`, `n1-standard-4-r2`."""
    name = str(candidate["machine_type"])
    if candidate.get("accelerator_count"):
        name += f"-{candidate['accelerator_type']}x{candidate['accelerator_count']}"
    if int(candidate.get("replicas", 1)) != 1:
        name += f"-r{candidate['replicas']}"
    return label_value(name)[:MAX_LABEL_LENGTH]


def describe(candidate: Mapping[str, Any]) -> str:
    """For people: `g2-standard-8 + 1 x NVIDIA_L4, 2 replicas`."""
    text = str(candidate["machine_type"])
    if candidate.get("accelerator_count"):
        text += f" + {candidate['accelerator_count']} x {candidate['accelerator_type']}"
    n = int(candidate.get("replicas", 1))
    return text + (f", {n} replicas" if n != 1 else "")


def candidate_labels(labels: Mapping[str, str], candidate: Mapping[str, Any]) -> dict[str, str]:
    """The run's labels plus the candidate's."""
    return {**labels, CANDIDATE_LABEL_KEY: key(candidate)}


def candidate_run_id(run_label: str, candidate: Mapping[str, Any]) -> str:
    """The run id a candidate's history entry carries: the run's label and the candidate's
    key (cut from the run's side, so candidates stay apart), <= 63 characters."""
    suffix = key(candidate)
    head = run_label[: MAX_LABEL_LENGTH - len(suffix) - 1].rstrip("-_")
    return f"{head}-{suffix}" if head else suffix
