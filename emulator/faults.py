"""Fault injection: make deploys fail, hang or serve other weights than the artifact holds,
make predictions slow or failing.

Set at start by CLI flags, changed at runtime by `PUT /deploytest/v1/faults`.
A deploy reads the faults once, when it is accepted; predict reads them per request.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from emulator.errors import invalid

DEPLOY_FAULTS = (None, "fail", "hang", "wrong-weights")


@dataclass
class Faults:
    """The active faults (all off by default)."""

    deploy: str | None = None  # None | "fail" | "hang" | "wrong-weights"
    predict_error_rate: float = 0.0  # 0.0-1.0: share of predict calls answered with an error
    predict_error_code: int = 503  # HTTP code of injected predict errors
    predict_latency_ms: int = 0  # added before every predict is forwarded
    deploy_machine_type: str = ""  # the deploy fault hits only this machine type ('': all)

    def deploy_fault_for(self, machine_type: str) -> str | None:
        """The deploy fault a deploy on `machine_type` gets."""
        if self.deploy_machine_type and machine_type != self.deploy_machine_type:
            return None
        return self.deploy

    def to_json(self) -> dict:
        """The faults as the admin API shows them."""
        return asdict(self)


class FaultState:
    """Thread-safe holder of the active `Faults`."""

    def __init__(self, faults: Faults | None = None):
        self._lock = threading.Lock()
        self._faults = faults or Faults()

    def get(self) -> Faults:
        """A snapshot of the active faults."""
        with self._lock:
            return Faults(**asdict(self._faults))

    def update(self, changes: dict) -> Faults:
        """Apply a partial update (INVALID_ARGUMENT if bad); return the new faults."""
        with self._lock:
            merged = {**asdict(self._faults), **changes}
            self._faults = validate(merged)
            return Faults(**asdict(self._faults))

    def predict_error(self) -> int | None:
        """Roll the dice for one predict call: the HTTP code to fail with, or None."""
        f = self.get()
        if f.predict_error_rate > 0 and random.random() < f.predict_error_rate:
            return f.predict_error_code
        return None


def validate(values: dict) -> Faults:
    """Check a full fault dict and build `Faults`, raising INVALID_ARGUMENT."""
    unknown = set(values) - set(Faults.__dataclass_fields__)
    if unknown:
        raise invalid(f"Unknown fault fields: {sorted(unknown)}.")
    deploy = values.get("deploy")
    if deploy not in DEPLOY_FAULTS:
        raise invalid(
            f"deploy must be one of null, 'fail', 'hang', 'wrong-weights'; got {deploy!r}."
        )
    try:
        rate = float(values.get("predict_error_rate", 0.0))
        code = int(values.get("predict_error_code", 503))
        latency = int(values.get("predict_latency_ms", 0))
    except (TypeError, ValueError) as exc:
        raise invalid(f"Bad fault value: {exc}.") from None
    if not 0.0 <= rate <= 1.0:
        raise invalid("predict_error_rate must be within 0.0-1.0.")
    if not 400 <= code <= 599:
        raise invalid("predict_error_code must be an HTTP error code (400-599).")
    if latency < 0:
        raise invalid("predict_latency_ms must be >= 0.")
    machine = values.get("deploy_machine_type") or ""
    if not isinstance(machine, str) or not re.fullmatch(r"(?:[a-z][a-z0-9-]{0,62})?", machine):
        raise invalid(f"deploy_machine_type must be a machine type or ''; got {machine!r}.")
    return Faults(deploy, rate, code, latency, machine)


def write_other_weights(model_dir: str | Path, out_dir: str | Path, seed: int = 1) -> Path:
    """The `wrong-weights` deploy fault: a copy of the model folder whose safetensors
    weights carry noise as large as each tensor's own spread, so the endpoint serves a model
    of the same shape and tokenizer that answers differently (what the correctness gate's
    parity check must catch)."""
    import shutil

    import numpy as np
    from safetensors.numpy import load_file, save_file

    src, out = Path(model_dir), Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out)
    rng = np.random.default_rng(seed)
    for path in sorted(out.rglob("*.safetensors")):
        tensors = load_file(str(path))
        for name, value in tensors.items():
            if value.dtype.kind == "f" and value.size > 1:
                noise = rng.standard_normal(value.shape).astype(value.dtype)
                tensors[name] = value + noise * (value.std() or 1.0)
        save_file(tensors, str(path), metadata={"format": "pt"})
    return out
