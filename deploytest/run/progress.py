"""What a person watching `deploytest run` sees: timestamped steps, the job's task starts
and ends (from its task states), and the tasks' own lines from the job's log, without
kfp's executor dumps, GCPC's gcp_resources JSON or Locust's timestamped INFO lines.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# kfp.local's log vocabulary, which the embedded Vertex AI Pipelines writes per job.
_TASK_START = re.compile(r"Executing task '([^']+)'")
_TASK_END = re.compile(r"Task '([^']+)' finished with status (\w+)")
_PIPELINE_END = re.compile(r"Pipeline '([^']+)' finished with status (\w+)")
_LOCUST_INFO = re.compile(r"^\[locust\] \[[\d-]+ [\d:,]+\] [^/]+/INFO/")
# kfp prints each output artifact's repr after a task; the summary says it better.
_ARTIFACT_REPR = re.compile(r"^\w+: \w+\( name=|^uri='|^metadata=|^Output: ")
_EXCEPTION = re.compile(r"^[A-Za-z_.]+(Error|Exception|Incomplete|Interrupt)\b")


class Progress:
    """Prints one run's progress: `say` for the run's own steps, `task_line` for each line
    of the pipeline job's log."""

    def __init__(self, out: Callable[..., None] = print, started: float | None = None):
        self.out = out
        self.started = time.monotonic() if started is None else started
        self._in_json = False
        self._in_traceback = False
        self._in_resources = False

    def stamp(self) -> str:
        return f"[{time.monotonic() - self.started:5.1f}s]"

    def say(self, text: str) -> None:
        self.out(f"{self.stamp()} {text}", flush=True)

    def task_line(self, raw: str) -> None:
        shown = self.filter(raw)
        if shown is not None:
            self.out(f"{self.stamp()}     {shown}", flush=True)

    def filter(self, raw: str) -> str | None:
        """The part of one log line worth showing, or None. Task starts and ends are not
        shown from the log: the job's task states say them (JobFollower)."""
        line = _ANSI.sub("", raw.rstrip("\n"))
        body = line.strip()
        if _TASK_START.search(line) or _TASK_END.search(line) or _PIPELINE_END.search(line):
            return None
        if _LOCUST_INFO.match(body):
            return None
        if body.startswith("gcp_resources:"):
            self._in_resources = True
            return None
        if self._in_resources:
            self._in_resources = body != "}"
            return None
        if not line.startswith("    "):
            return None
        # kfp's executor dumps its whole input and output as JSON; keep that in the log only.
        if body.startswith("Traceback"):
            self._in_traceback = True
            return None
        if body.startswith("[KFP Executor"):
            self._in_json = body.endswith("Got executor_input:")
            return None
        if self._in_json:
            if line.startswith("    }"):
                self._in_json = False
            return None
        if self._in_traceback:
            # show only the exception line that ends a traceback
            if _EXCEPTION.match(body):
                self._in_traceback = False
                return body
            return None
        if not body or _ARTIFACT_REPR.search(body):
            return None
        return body
