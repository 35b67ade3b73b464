"""Machine profiles: what a deployed model's machine type means on this one machine.

On Vertex AI a bigger machine or an accelerator makes the same container faster; here
every model server shares one laptop. With `--machine-profiles FILE` (the shipped table is
`emulator/machine_profiles.json`), a model deployed on a type the table names gets that
type's container variables (an accelerator's row wins over its machine's), so that
right-sizing candidates differ measurably offline. Without the option nothing is added:
a single run behaves as before. Variables the model's own containerSpec sets are kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from emulator.errors import invalid

SHIPPED = Path(__file__).with_name("machine_profiles.json")
MAX_BYTES = 64 * 1024
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
_VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]{0,127}$")


class MachineProfiles:
    """The table (machine types and accelerators -> container variables); empty: off."""

    def __init__(self, table: Mapping | None = None):
        table = table or {}
        self.machine_types = _rows(table.get("machine_types", {}), "machine_types")
        self.accelerators = _rows(table.get("accelerators", {}), "accelerators")

    @classmethod
    def load(cls, path: str | Path | None) -> MachineProfiles:
        """`None`: off; `"default"`: the shipped table; else a JSON file like it."""
        if path is None:
            return cls()
        p = SHIPPED if str(path) == "default" else Path(path)
        if not p.is_file() or p.stat().st_size > MAX_BYTES:
            raise invalid(f"machine profiles {str(path)!r}: not a file of at most 64 KiB.")
        try:
            table = json.loads(p.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise invalid(f"machine profiles {str(path)!r} is not JSON: {exc}.") from None
        if not isinstance(table, dict):
            raise invalid(f"machine profiles {str(path)!r}: expected a JSON object.")
        return cls(table)

    def env_for(self, machine_type: str, accelerator_type: str = "") -> dict[str, str]:
        """The variables a model server on this machine (and accelerator) gets."""
        env = dict(self.machine_types.get(machine_type, {}))
        env.update(self.accelerators.get(accelerator_type, {}) if accelerator_type else {})
        return env


def _rows(rows, what: str) -> dict[str, dict[str, str]]:
    if not isinstance(rows, dict):
        raise invalid(f"machine profiles: {what} must be an object.")
    out: dict[str, dict[str, str]] = {}
    for name, env in rows.items():
        if not isinstance(name, str) or not _NAME.match(name) or not isinstance(env, dict):
            raise invalid(f"machine profiles: bad {what} entry {name!r}.")
        for key, value in env.items():
            if not isinstance(key, str) or not _VARIABLE.match(key) or not isinstance(value, str):
                raise invalid(
                    f"machine profiles: {what}.{name}: {key!r} must be an upper-case "
                    "variable name with a string value."
                )
        out[name] = dict(env)
    return out
