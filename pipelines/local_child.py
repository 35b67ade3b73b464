"""Run a compiled pipeline with kfp.local's SubprocessRunner (a child of `deploytest run`).

Runs in its own process group so that `deploytest run` can stop the whole run (this
process, its task subprocesses, Locust) on Ctrl-C and then clean up by label itself.

    python -m pipelines.local_child PIPELINE_YAML ARGUMENTS_JSON PIPELINE_ROOT
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    pipeline_yaml, arguments_json, pipeline_root = argv
    from kfp import components, local

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=pipeline_root,
        raise_on_error=False,
    )
    pipeline = components.load_component_from_file(pipeline_yaml)
    with open(arguments_json) as f:
        arguments = json.load(f)
    pipeline(**arguments)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
