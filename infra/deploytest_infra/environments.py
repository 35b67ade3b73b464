"""Several environments (dev, test, prod) from one settings file, one stack each.

File shape (settings.example.json)::

    {"defaults": {...InfraSettings keys...},
     "environments": {"dev": {...overrides...}, "test": {...}, "prod": {...}}}

Each environment is `defaults`, then its own overrides, then `environment` set to its
name. A `template_source` names another environment of the file; its project and region
are filled in from there unless given. A file of one environment (the flat shape of
InfraSettings keys, as before issue 22) is still read: one stack.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from deploytest_infra.settings import (
    ENVIRONMENT_RE,
    SETTINGS_ENV,
    InfraSettings,
    SettingsError,
    read_settings_file,
)

TOP_LEVEL_KEYS = {"defaults", "environments"}


def load_environments(path: str | os.PathLike[str] | None = None) -> list[InfraSettings]:
    """Every environment of the file at `path` (or $DEPLOYTEST_INFRA_SETTINGS), in file order.

    No file: the defaults, one environment (dev). Every problem of every environment is
    reported at once.
    """
    path = path or os.environ.get(SETTINGS_ENV)
    if not path:
        return [InfraSettings()]
    return environments_from_mapping(read_settings_file(path), source=str(path))


def environments_from_mapping(values: Mapping[str, Any], source: str = "") -> list[InfraSettings]:
    where = f" in {source}" if source else ""
    if "environments" not in values:
        if "defaults" in values:
            raise SettingsError(
                f"invalid infra settings{where}:\n  - 'defaults' without 'environments'"
            )
        # The flat shape of one environment: still one stack.
        return [InfraSettings.from_mapping(values)]
    unknown = sorted(set(values) - TOP_LEVEL_KEYS)
    if unknown:
        raise SettingsError(
            f"invalid infra settings{where}:\n  - unknown top-level keys {unknown}: a file of "
            "several environments has only 'defaults' and 'environments'; InfraSettings keys "
            "go in 'defaults' (shared) or in an environment (its own)"
        )
    defaults, envs = values.get("defaults", {}), values["environments"]
    if not isinstance(defaults, dict) or not isinstance(envs, dict) or not envs:
        raise SettingsError(
            f"invalid infra settings{where}:\n  - 'defaults' must be an object and "
            "'environments' a non-empty object of environment name -> overrides"
        )
    problems: list[str] = []
    merged: dict[str, dict[str, Any]] = {}
    for name, overrides in envs.items():
        if not isinstance(overrides, dict):
            problems.append(f"environments.{name}: must be an object of overrides")
            continue
        if not ENVIRONMENT_RE.match(name):
            problems.append(
                f"environments: {name!r} is not an environment name (lowercase letters, "
                "digits and '-', at most 16 characters, starting with a letter)"
            )
            continue
        if overrides.get("environment", name) != name or "environment" in defaults:
            problems.append(
                f"environments.{name}: leave 'environment' out; the key under "
                "'environments' is the name"
            )
            continue
        merged[name] = {**defaults, **overrides, "environment": name}
    for name, env in merged.items():
        source = env.get("template_source")
        if not source:
            continue
        if source in merged:
            upstream = merged[source]
            if upstream.get("template_source"):
                problems.append(
                    f"environments.{name}: template_source {source!r} itself has a "
                    "template_source; name the environment whose merges upload (e.g. dev)"
                )
            env.setdefault(
                "template_source_project", upstream.get("project_id", InfraSettings.project_id)
            )
            env.setdefault("template_source_region", upstream.get("region", InfraSettings.region))
        elif not env.get("template_source_project"):
            problems.append(
                f"environments.{name}: template_source {source!r} is not in this file; "
                "add it, or give template_source_project and template_source_region"
            )
    result: list[InfraSettings] = []
    for name, env in merged.items():
        try:
            result.append(InfraSettings.from_mapping(env))
        except SettingsError as exc:
            lines = str(exc).splitlines()[1:]
            problems.extend(f"environments.{name}: {line.strip()[2:]}" for line in lines)
    if problems:
        raise SettingsError(
            f"invalid infra settings{where}:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return result
