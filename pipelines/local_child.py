"""Run a compiled pipeline with kfp.local's SubprocessRunner (a child of `deploytest run`).

Runs in its own process group so that `deploytest run` can stop the whole run (this
process, its task subprocesses, Locust) on Ctrl-C and then clean up by label itself.

    python -m pipelines.local_child PIPELINE_YAML ARGUMENTS_JSON PIPELINE_ROOT [OWNER_FD]

OWNER_FD is the read end of a pipe whose write end only `deploytest run` holds: when it
dies, even by SIGKILL, the read returns EOF and this process stops every task under it
(Locust included) and exits, instead of running on unowned.
"""

from __future__ import annotations

import json
import os
import sys
import threading

STOP_GRACE_S = 3.0


def stop_descendants_and_exit() -> None:
    """SIGTERM every process under this one, SIGKILL what is left, exit at once."""
    import psutil

    try:
        procs = psutil.Process().children(recursive=True)
    except psutil.Error:
        procs = []
    from emulator.processes import terminate_then_kill

    terminate_then_kill(procs, STOP_GRACE_S)
    os._exit(1)


def exit_with_owner(fd: int) -> None:
    """Watch the owner pipe in a daemon thread; stop everything when the owner is gone."""

    def wait() -> None:
        try:
            while os.read(fd, 1):
                pass
        except OSError:
            pass
        # Nobody reads our output any more (a print would raise BrokenPipeError): just stop.
        stop_descendants_and_exit()

    threading.Thread(target=wait, name="owner-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    pipeline_yaml, arguments_json, pipeline_root = argv[:3]
    if len(argv) > 3:
        exit_with_owner(int(argv[3]))
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
