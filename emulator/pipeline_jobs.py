"""Vertex AI Pipelines (`pipelineJobs`, REST v1) in the emulator.

create (with `pipelineSpec`), get (with `jobDetail.taskDetails`), list (with filter),
cancel, delete. A created job runs its compiled IR in a child process
(`emulator.pipeline_child`, kfp's own local runtime) with the emulator's environment.
States as on Vertex AI: PENDING -> RUNNING -> SUCCEEDED | FAILED; a cancel gives
CANCELLING, then CANCELLED once the exit handler has run; a cancel of a finished job is
FAILED_PRECONDITION.

Checked at create, before anything starts (INVALID_ARGUMENT naming the problem): the spec
parses as a PipelineSpec, every executor is a container or an importer, every container
image is one whose code is installed here (the emulator runs the image's command in the
local environment instead of pulling it), every input parameter without a default is
given, and given values have the declared types; and nothing the runner cannot do is
asked for (`unsupported_features`: input artifacts, FAIL_FAST, ...).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from emulator import filters
from emulator import resources as res
from emulator import validation as check
from emulator.errors import ApiError, failed_precondition, invalid, not_found
from emulator.operations import Operations
from emulator.store import Store
from procgroup import stop_group

log = logging.getLogger("emulator.pipelines")

KIND = "pipelineJobs"
_JOB_ID = re.compile(r"^[a-z][a-z0-9-]{0,127}$")
_TEMPLATE_URI = re.compile(
    r"^https://(?P<location>[a-z0-9-]+)-kfp\.pkg\.dev/(?P<project>[^/]+)/(?P<repo>[^/]+)/"
    r"(?P<package>[^/]+)/(?P<ref>[^/]+)$"
)
# Images whose code is installed with deploytest, so their command runs here unchanged:
# Google Cloud Pipeline Components' images, Python base images (lightweight components
# install nothing here: kfp.local runs them with this interpreter), and our components'.
DEFAULT_IMAGE_PREFIXES = (
    "gcr.io/ml-pipeline/google-cloud-pipeline-components",
    "us-docker.pkg.dev/vertex-ai/",
    "python:",
)
TERMINAL = {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"}
STOP_GRACE_S = 10.0

_PARAM_TYPES = {
    "STRING": (str,),
    "NUMBER_INTEGER": (int,),
    "NUMBER_DOUBLE": (int, float),
    "BOOLEAN": (bool,),
    "STRUCT": (dict,),
    "LIST": (list,),
}


def default_service_account() -> str:
    """The Compute Engine default service account of the emulator's one project number."""
    from emulator.resource_manager import project_number

    return f"{project_number()}-compute@developer.gserviceaccount.com"


def repository_prefixes(*repositories: str) -> tuple[str, ...]:
    """`REPO:` and `REPO@` for each repository: its tags and digests, not `REPO-other`."""
    return tuple(f"{repo}{sep}" for repo in repositories for sep in (":", "@"))


def allowed_image_prefixes() -> tuple[str, ...]:
    """GCPC's and Python's images, plus `DEPLOYTEST_COMPONENT_IMAGE`'s repository."""
    from components.image import COMPONENT_IMAGE

    ours = COMPONENT_IMAGE.split("@", 1)[0].rsplit(":", 1)[0]
    return (*DEFAULT_IMAGE_PREFIXES, *repository_prefixes(ours))


def _type_ok(value, parameter_type: str) -> bool:
    if parameter_type == "NUMBER_INTEGER" and isinstance(value, float):
        return value.is_integer()  # protobuf Values carry every number as a double
    if isinstance(value, bool) and parameter_type in ("NUMBER_INTEGER", "NUMBER_DOUBLE"):
        return False
    return isinstance(value, _PARAM_TYPES.get(parameter_type, (object,)))


def check_spec(spec: dict, values: dict, images: tuple[str, ...]) -> dict:
    """Validate a PipelineSpec and its parameter values; return the values to run with."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    if not isinstance(spec, dict) or not spec:
        raise invalid("pipelineJob.pipelineSpec or pipelineJob.templateUri is required.")
    try:
        json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        raise invalid(f"pipelineJob.pipelineSpec is not a valid PipelineSpec: {exc}") from None
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    for name, executor in executors.items():
        other = sorted(set(executor) - {"container", "importer"})
        if other or not executor:
            kinds = ", ".join(other) or "none"
            raise invalid(f"Executor {name!r}: only container and importer executors are "
                          f"emulated, not {kinds}.")  # fmt: skip
        if "importer" in executor:
            continue
        container = executor["container"]
        image = container.get("image", "")
        if not image.startswith(images):
            raise invalid(
                f"Executor {name!r}: unknown image {image!r}: the emulator runs an image's "
                "command in the local environment, so only images whose code is installed "
                f"here run ({', '.join(images)})."
            )
        if not container.get("command") and not container.get("args"):
            raise invalid(f"Executor {name!r}: the container has no command.")
    if not isinstance(values, dict):
        raise invalid("runtimeConfig.parameterValues must be a map.")
    declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise invalid(f"runtimeConfig.parameterValues names unknown parameters: {unknown}.")
    missing = sorted(
        name
        for name, d in declared.items()
        if name not in values and "defaultValue" not in d and not d.get("isOptional")
    )
    if missing:
        raise invalid(f"The pipeline parameter(s) {missing} have no value and no default.")
    for name, value in values.items():
        kind = declared[name].get("parameterType", "")
        if not _type_ok(value, kind):
            raise invalid(f"The pipeline parameter {name!r} must be {kind}, got {value!r}.")
        if kind == "NUMBER_INTEGER" and isinstance(value, float):
            values = {**values, name: int(value)}
    return values


_FAIL_FAST = ("PIPELINE_FAILURE_POLICY_FAIL_FAST", 2)  # by name or number (proto3 JSON)


def unsupported_features(spec: dict, runtime: dict) -> list[str]:
    """What in a valid job the emulator's runner (kfp.local, with the shims of
    `emulator.pipeline_child`) cannot do, each named: refused at create rather than failing
    once the job runs. Every case here fails or is silently ignored by the runner."""
    problems = []
    if runtime.get("inputArtifacts") or runtime.get("input_artifacts"):
        problems.append(
            "runtimeConfig.inputArtifacts (kfp.local passes a pipeline only parameters)"
        )
    if runtime.get("parameters"):
        problems.append(
            "runtimeConfig.parameters (the deprecated map of schema 2.0.0; give "
            "runtimeConfig.parameterValues)"
        )
    policy = runtime.get("failurePolicy", runtime.get("failure_policy"))
    if policy in _FAIL_FAST:
        problems.append(
            "runtimeConfig.failurePolicy PIPELINE_FAILURE_POLICY_FAIL_FAST (the runner lets "
            "every task that can still run finish: FAIL_SLOW, Vertex AI's default)"
        )
    root = spec.get("root", {}) if isinstance(spec.get("root"), dict) else {}
    artifacts = sorted((root.get("inputDefinitions") or {}).get("artifacts") or {})
    if artifacts:
        problems.append(f"pipeline input artifacts {artifacts} (root.inputDefinitions.artifacts)")
    for name, executor in (spec.get("deploymentSpec", {}).get("executors") or {}).items():
        container = executor.get("container") or {}
        words = [*container.get("command", []), *container.get("args", [])]
        text = json.dumps(words)
        if "{{$.json_escape" in text:
            problems.append(f"executor {name!r}: a json_escape placeholder (kfp.local has none)")
        if "{{$.workspace_path}}" in text:
            problems.append(f"executor {name!r}: the workspace placeholder (no workspace here)")
    dags = [("root", root), *((n, c) for n, c in (spec.get("components") or {}).items())]
    for dag_name, component in dags:
        for task_name, task in ((component.get("dag") or {}).get("tasks") or {}).items():
            items = (task.get("parameterIterator") or {}).get("items") or {}
            source = (
                (task.get("inputs") or {})
                .get("parameters", {})
                .get(items.get("inputParameter", ""), {})
            )
            output = source.get("taskOutputParameter") or {}
            if output and output.get("outputParameterKey") != "Output":
                problems.append(
                    f"task {task_name!r} ({dag_name}): a ParallelFor over the output "
                    f"{output.get('outputParameterKey')!r} of task {output.get('producerTask')!r} "
                    "(kfp.local iterates over a task's single output `Output` or a pipeline "
                    "parameter only)"
                )
    return problems


class PipelineJobs:
    """The pipelineJobs collection: documents in the store, runs as child processes."""

    def __init__(
        self,
        store: Store,
        ops: Operations,
        state_dir: Path,
        images: tuple[str, ...] | None = None,
    ):
        self.store = store
        self.ops = ops
        self.jobs_dir = state_dir / "pipelines"
        self.images = images or allowed_image_prefixes()
        self.task_env: dict[str, str] = {}
        self.storage = None
        self.registry = None
        self._children: dict[str, subprocess.Popen] = {}
        self._owner_fds: dict[str, int] = {}
        self._lock = threading.Lock()

    def attach(self, task_env: dict[str, str], storage, registry) -> None:
        """The Google front's pieces: the client environment every task gets (so GCPC's
        launchers reach this emulator by Google's hosts), Cloud Storage (the pipeline root
        and the `/gcs/` mount) and Artifact Registry (`templateUri`)."""
        self.task_env, self.storage, self.registry = dict(task_env), storage, registry

    @property
    def mount_dir(self) -> Path:
        """Where Cloud Storage keeps object bytes as plain files, `<bucket>/<name>`
        (gcp-storage-emulator's layout): what tasks see as `/gcs/` on Vertex AI."""
        from gcp_storage_emulator.settings import STORAGE_DIR

        return self.storage.data_dir / STORAGE_DIR

    # -- REST methods ---------------------------------------------------------------------
    def create(self, parent: str, body: dict, job_id: str | None) -> dict:
        """Validate, store PENDING, start the run; answer the PipelineJob."""
        check.check_display_name(body.get("displayName") or "pipeline", "pipeline_job.display_name")
        check.check_labels(body.get("labels"), "pipeline_job.labels")
        if body.get("templateUri") and not body.get("pipelineSpec"):
            body = {**body, "pipelineSpec": self._template(body["templateUri"])}
        runtime = body.get("runtimeConfig") or {}
        values = check_spec(
            body.get("pipelineSpec"), runtime.get("parameterValues") or {}, self.images
        )
        problems = unsupported_features(body["pipelineSpec"], runtime)
        if problems:
            raise invalid(
                "The emulator's Vertex AI Pipelines cannot run this job: "
                + "; ".join(problems) + "."
            )  # fmt: skip
        root = runtime.get("gcsOutputDirectory") or body.get("pipelineSpec", {}).get(
            "defaultPipelineRoot", ""
        )
        if not root:
            raise invalid("runtimeConfig.gcsOutputDirectory (the pipeline root) is required.")
        local_root = self.local_root(root)
        if not job_id:  # Vertex AI generates one; the SDK always sends its own
            pipeline_name = body["pipelineSpec"].get("pipelineInfo", {}).get("name", "job")
            job_id = f"{pipeline_name}-{res.new_id()[:8]}"
        if not _JOB_ID.match(job_id):
            raise invalid(f"Invalid pipelineJobId {job_id!r}: [a-z][a-z0-9-]{{0,127}}.")
        name = f"{parent}/{KIND}/{job_id}"
        now = res.now()
        job = {
            "name": name,
            "displayName": body.get("displayName") or job_id,
            "createTime": now,
            "updateTime": now,
            "pipelineSpec": body["pipelineSpec"],
            "state": "PIPELINE_STATE_PENDING",
            "labels": {
                **(body.get("labels") or {}),
                # Vertex AI adds this label to every pipeline job (billing export key).
                "vertex-ai-pipelines-run-billing-id": res.new_id(),
            },
            "runtimeConfig": {**runtime, "parameterValues": values, "gcsOutputDirectory": root},
        }
        for key in ("serviceAccount", "network", "encryptionSpec"):
            if key in body:
                job[key] = body[key]
        if not job.get("serviceAccount"):
            # PipelineJob.service_account: "If not specified, the Compute Engine default
            # service account in the project will be used" (PROJECT_NUMBER-compute@...).
            job["serviceAccount"] = default_service_account()
        elif not isinstance(job["serviceAccount"], str) or len(job["serviceAccount"]) > 320:
            raise invalid("pipeline_job.service_account must be a service account's email.")
        with self.store.lock:
            if self.store.get_resource(name) is not None:
                raise ApiError("ALREADY_EXISTS", f"PipelineJob {name} already exists.")
            self.store.put_resource(KIND, parent, job)
        self._start(job, job_id, values, local_root)
        return self.render(self.store.get_resource(name))

    def _template(self, uri: str) -> dict:
        """The PipelineSpec a `templateUri` names in the emulated Artifact Registry
        (`https://LOCATION-kfp.pkg.dev/PROJECT/REPO/PACKAGE/TAG_OR_sha256:...`)."""
        import yaml

        m = _TEMPLATE_URI.match(str(uri))
        if not m or self.registry is None:
            raise invalid(
                f"templateUri {uri!r}: only https://LOCATION-kfp.pkg.dev/PROJECT/REPO/PACKAGE/"
                "TAG (Artifact Registry) is emulated."
            )
        repo = f"projects/{m['project']}/locations/{m['location']}/repositories/{m['repo']}"
        try:
            spec = yaml.safe_load(self.registry.resolve(repo, m["package"], m["ref"]))
        except ApiError as err:
            raise invalid(f"templateUri {uri!r}: {err.message}") from None
        return spec.get("pipelineSpec", spec) if isinstance(spec, dict) else spec

    def get(self, name: str) -> dict:
        """The PipelineJob with `jobDetail.taskDetails`."""
        job = self.store.get_resource(name)
        if job is None or f"/{KIND}/" not in name:
            raise not_found(f"PipelineJob {name}")
        return self.render(job)

    def list(self, parent: str, query) -> dict:
        """PipelineJobs under a parent, newest first, with `filter` (list view: no
        jobDetail) and `readMask` (only those fields: the SDK's
        `PipelineJob.list(enable_simple_view=True)` asks for a few)."""
        from google.cloud.aiplatform_v1.types import pipeline_job as pipeline_job_pb

        from emulator import field_masks

        paths = field_masks.paths_of(query, "readMask")
        field_masks.check_paths(paths, pipeline_job_pb.PipelineJob, "read_mask")
        # newest first among equal create times too (the documented default order)
        jobs = [self._public(j) for j in reversed(self.store.list_resources(KIND, parent))]
        page = filters.select(jobs, "pipelineJobs", KIND, query, parent)
        page[KIND] = [field_masks.apply_read_mask(j, paths) for j in page[KIND]]
        return page

    def cancel(self, name: str) -> dict:
        """CANCELLING now; CANCELLED once the exit handler ran (an error with code 1,
        CANCELLED, as the REST reference of `pipelineJobs.cancel` says)."""
        with self.store.lock:
            job = self.get(name)
            if job["state"] in TERMINAL:
                raise failed_precondition(
                    f"PipelineJob {name} is in state {job['state']} and cannot be cancelled."
                )
            stored = self.store.get_resource(name)
            stored["state"] = "PIPELINE_STATE_CANCELLING"
            stored["updateTime"] = res.now()
            self.store.put_resource(KIND, name.split(f"/{KIND}/")[0], stored)
        with self._lock:
            child = self._children.get(name)
        # The runner stops the body's tasks and runs the exit handler. A cancel of a job that
        # is CANCELLING already is answered {} and does not stop the exit handler: Vertex AI
        # documents no answer for it (pipeline_child._on_cancel).
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
        return {}

    def delete(self, name: str) -> dict:
        """Delete a finished job (a running one is FAILED_PRECONDITION); a done LRO."""
        with self.store.lock:
            job = self.get(name)
            if job["state"] not in TERMINAL:
                raise failed_precondition(
                    f"PipelineJob {name} is {job['state']}; cancel it before deleting it."
                )
            self.store.delete_resource(name)
        return self.ops.done(name, res.DELETE_METADATA, res.EMPTY)

    def log_path(self, job_id: str) -> Path | None:
        """The task log of a job (None for an id that is not a job id)."""
        if not _JOB_ID.match(job_id):
            return None
        return self.jobs_dir / job_id / "pipeline.log"

    # -- running --------------------------------------------------------------------------
    def local_root(self, root: str) -> Path:
        """Where a `gs://BUCKET/PATH` pipeline root lives on this machine: Cloud Storage's
        own file for the object path, so tasks write local files (as through the `/gcs/`
        mount on Vertex AI) and `publish` makes them objects. The bucket must exist, as on
        Vertex AI (the SDK creates it before it submits)."""
        if not root.startswith("gs://"):
            raise invalid(f"The pipeline root {root!r} must be a gs:// URI.")
        bucket, _, path = root[len("gs://") :].partition("/")
        if self.storage is None or self.storage.client().lookup_bucket(bucket) is None:
            raise invalid(f"The pipeline root's bucket gs://{bucket} does not exist.")
        return self.mount_dir / bucket / path

    def _start(self, job: dict, job_id: str, values: dict, pipeline_root: Path) -> None:
        job_dir = self.jobs_dir / job_id
        job_dir.mkdir(parents=True, exist_ok=True)
        pipeline_root.mkdir(parents=True, exist_ok=True)
        (job_dir / "job.json").write_text(
            json.dumps(
                {
                    "name": job["name"],
                    "jobId": job_id,
                    "displayName": job["displayName"],
                    "uuid": str(uuid.uuid4()),
                    "createTime": job["createTime"],
                    "pipelineSpec": job["pipelineSpec"],
                    "parameterValues": values,
                    "localPipelineRoot": str(pipeline_root),
                    "outputDir": str(pipeline_root / job_id),
                }
            )
        )
        env = {**os.environ, **self.task_env, "PYTHONUNBUFFERED": "1"}
        env["TMPDIR"] = str(job_dir / "tmp")
        (job_dir / "tmp").mkdir(exist_ok=True)
        root_dir = Path(__file__).resolve().parent.parent
        # task_site/sitecustomize.py points kfp's `/gcs/` mount prefix at Cloud Storage's
        # files, so component code reads a gs:// input artifact's `.path` as on Vertex AI.
        site = Path(__file__).resolve().parent / "task_site"
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(site), str(root_dir), env.get("PYTHONPATH")])
        )
        env["DEPLOYTEST_GCS_MOUNT"] = str(self.mount_dir) + "/"
        # The run ends with the emulator, even one killed by SIGKILL: the child holds the
        # read end of a pipe whose write end only the emulator has (emulator/server.py).
        owner_read, owner_write = os.pipe()
        os.set_inheritable(owner_write, False)
        try:
            with open(job_dir / "pipeline.log", "ab") as log_file:
                child = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "emulator.pipeline_child",
                        str(job_dir),
                        str(owner_read),
                    ],  # fmt: skip
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=job_dir,
                    start_new_session=True,  # one killpg reaches every task
                    pass_fds=(owner_read,),
                )
        except BaseException:
            os.close(owner_write)
            raise
        finally:
            os.close(owner_read)
        self._owner_fds[job["name"]] = owner_write
        with self._lock:
            self._children[job["name"]] = child
        self._update(job["name"], state="PIPELINE_STATE_RUNNING", startTime=res.now())
        threading.Thread(
            target=self._watch, args=(job["name"], child, job_dir), daemon=True
        ).start()
        log.info("pipeline job %s started (pid %s)", job["name"], child.pid)

    def _watch(self, name: str, child: subprocess.Popen, job_dir: Path) -> None:
        child.wait()
        with self._lock:
            self._children.pop(name, None)
            fd = self._owner_fds.pop(name, None)
        if fd is not None:
            os.close(fd)
        try:
            result = json.loads((job_dir / "result.json").read_text())
        except (OSError, ValueError):
            result = {"ok": False, "error": f"The pipeline runner exited with {child.returncode}."}
        job = self.store.get_resource(name)
        if job is None or job["state"] in TERMINAL:
            return
        try:
            self._publish(job_dir / "job.json")
        except Exception as exc:  # the job's outcome stands; its files stay on disk
            log.warning("pipeline job %s: outputs not published to Cloud Storage: %s", name, exc)
        # A cancelled job's error code 1 (CANCELLED) is documented (pipelineJobs.cancel);
        # 9 FAILED_PRECONDITION for a failed one and 14 UNAVAILABLE when the emulator stops
        # are the emulator's choice: Vertex AI does not document those (unverified).
        if job["state"] == "PIPELINE_STATE_CANCELLING" or result.get("cancelled"):
            state, error = "PIPELINE_STATE_CANCELLED", {"code": 1, "message": "Cancelled."}
        elif result.get("ok"):
            state, error = "PIPELINE_STATE_SUCCEEDED", None
        else:
            state = "PIPELINE_STATE_FAILED"
            error = {"code": 9, "message": result.get("error") or "The pipeline failed."}
        self._update(name, state=state, endTime=res.now(), error=error)
        log.info("pipeline job %s: %s", name, state)

    def _publish(self, job_json: Path) -> None:
        """Make the files the tasks wrote under the pipeline root Cloud Storage objects
        (they wrote them through the mount: the bytes are in place, the objects are not)."""
        out = Path(json.loads(job_json.read_text())["outputDir"])
        if self.storage is None or not out.is_dir():
            return
        bucket_name = out.relative_to(self.mount_dir).parts[0]
        bucket = self.storage.client().bucket(bucket_name)
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            name = path.relative_to(self.mount_dir / bucket_name).as_posix()
            bucket.blob(name).upload_from_filename(str(path))

    def _update(self, name: str, **fields) -> None:
        with self.store.lock:
            job = self.store.get_resource(name)
            if job is None:
                return
            for key, value in fields.items():
                if value is None:
                    job.pop(key, None)
                else:
                    job[key] = value
            job["updateTime"] = res.now()
            self.store.put_resource(KIND, name.split(f"/{KIND}/")[0], job)

    def stop_all(self, reason: str) -> None:
        """Stop every running job (the emulator is stopping): FAILED with `reason`.

        SIGUSR1 first: the runner stops its tasks itself, so it knows which it killed and
        reports none of them SUCCEEDED (a SIGTERM to the whole group reaches GCPC's
        launchers, which exit 0 on it). Whatever is left of a group is SIGKILLed after."""
        with self._lock:
            children = dict(self._children)
        for name, child in children.items():
            # FAILED first, so the runner's end (`_watch`) keeps this reason.
            self._update(
                name, state="PIPELINE_STATE_FAILED", endTime=res.now(),
                error={"code": 14, "message": reason},
            )  # fmt: skip
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGUSR1)
        for child in children.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(STOP_GRACE_S)
            stop_group(child, 0)

    def recover(self) -> None:
        """Jobs that were running when an earlier emulator stopped cannot resume: FAILED."""
        for job in self.store.all_resources():
            if f"/{KIND}/" in job.get("name", "") and job.get("state") not in TERMINAL:
                self._update(
                    job["name"], state="PIPELINE_STATE_FAILED", endTime=res.now(),
                    error={"code": 14, "message": "The emulator restarted while the job ran."},
                )  # fmt: skip

    # -- rendering ------------------------------------------------------------------------
    def _public(self, job: dict) -> dict:
        return check.renderable(job)

    def render(self, job: dict) -> dict:
        """The job with `jobDetail.taskDetails` from the runner's task events."""
        out = self._public(job)
        job_id = job["name"].rsplit("/", 1)[-1]
        events_path = self.jobs_dir / job_id / "events.jsonl"
        events = []
        if events_path.is_file():
            for line in events_path.read_text().splitlines():
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue  # a line being written
        out["jobDetail"] = {"taskDetails": task_details(events, job, self._gcs_uri)}
        return out

    def _gcs_uri(self, uri: str) -> str:
        """An artifact's URI as Vertex AI shows it: a file the task wrote under the pipeline
        root through the Cloud Storage mount is `gs://BUCKET/PATH` (kfp.local writes the
        local path)."""
        if self.storage is None or not uri.startswith("/"):
            return uri
        with contextlib.suppress(ValueError):
            return "gs://" + Path(uri).relative_to(self.mount_dir).as_posix()
        return uri


# Row kinds (pipeline_child._open_row) -> the execution's schema, as Vertex AI's metadata
# names them (the SDK's metadata/schema/system/execution_schema.py: system.Run "for root
# run execution", system.ContainerExecution; _pipeline_based_service reads system.Run and
# system.DagExecution executions from task details; system.ImporterExecution is KFP's).
EXECUTION_SCHEMAS = {
    "root": "system.Run",
    "dag": "system.DagExecution",
    "loop": "system.DagExecution",
    "iteration": "system.DagExecution",
    "container": "system.ContainerExecution",
    "importer": "system.ImporterExecution",
}
# PipelineTaskDetail.State -> Execution.State
EXECUTION_STATES = {
    "RUNNING": "RUNNING",
    "SUCCEEDED": "COMPLETE",
    "FAILED": "FAILED",
    "CANCELLED": "CANCELLED",
    "CANCELLING": "RUNNING",
}
_JOB_ENDS = {"PIPELINE_STATE_FAILED": "FAILED", "PIPELINE_STATE_CANCELLED": "CANCELLED"}


def task_details(events: list[dict], job: dict, gcs_uri=lambda uri: uri) -> list[dict]:
    """`PipelineTaskDetail`s (aiplatform_v1) of a run's task events: one row per task that
    ran, with `parentTaskId` (the DAG it ran in: the root's row, `exit-handler-1`, a
    sub-pipeline, a ParallelFor loop or one of its iterations), `taskUniqueName`, state and
    its history (`pipelineTaskStatus`), `error` (google.rpc.Status) when FAILED or
    CANCELLED, `execution` (parameters as `input:NAME` / `output:NAME` metadata, as the SDK
    reads them) and `inputs` / `outputs` artifact lists with URIs and metadata.

    Not documented by Vertex AI, so the emulator's choice (least surprising, unverified):
    the group rows' names (the IR's task names: `exit-handler-1`, `for-loop-2`; an iteration
    is `for-loop-2-iteration-0`, kfp.local's name) and states (a group is SUCCEEDED when its
    tasks are, FAILED or CANCELLED otherwise); task ids (small integers in start order, not
    Vertex AI's large ones); `taskUniqueName` without the root's name. Executions and
    artifacts carry no `name` (Vertex ML Metadata is not emulated), tasks no
    `executorDetail` (no CustomJob runs them)."""
    rows: dict[str, dict] = {}
    for event in events:
        key = str(event.get("id") or event["task"])  # events of older runs: by name
        row = rows.get(key)
        if row is None:
            row = rows[key] = {
                "taskId": key if "id" in event else str(len(rows) + 1),
                "taskName": event["task"],
                "createTime": event["time"],
                "startTime": event["time"],
                "pipelineTaskStatus": [],
                "_kind": event.get("kind", "container"),
                "_parent": str(event.get("parent") or ""),
                "_io": {},
            }
        row["state"] = event["state"]
        status = {"updateTime": event["time"], "state": event["state"]}
        error = event.get("error")
        if isinstance(error, str):  # older runs: the message only
            error = {"code": 9, "message": error}
        if error:
            row["error"] = status["error"] = error
        row["pipelineTaskStatus"].append(status)
        if event["state"] != "RUNNING":
            row["endTime"] = event["time"]
        for direction in ("inputs", "outputs"):
            if direction in event:
                row["_io"][direction] = event[direction]
    ended = _JOB_ENDS.get(job.get("state", ""))
    details = []
    for row in rows.values():
        if ended and row["state"] == "RUNNING":  # the runner was stopped before it wrote it
            row["state"] = ended
            row["endTime"] = job.get("endTime", row["createTime"])
            row["error"] = job.get("error") or {"code": 1 if ended == "CANCELLED" else 9}
            row["pipelineTaskStatus"].append(
                {"updateTime": row["endTime"], "state": ended, "error": row["error"]}
            )
        kind, parent, io = row.pop("_kind"), row.pop("_parent"), row.pop("_io")
        if parent and parent in rows:
            row["parentTaskId"] = parent
        names, up = [row["taskName"]], parent
        while up in rows and rows[up].get("parentTaskId"):
            names.insert(0, rows[up]["taskName"])
            up = rows[up]["parentTaskId"]
        row["taskUniqueName"] = ".".join(names) if kind != "root" else row["taskName"]
        if row["state"] == "RUNNING":
            row.pop("endTime", None)
        metadata = {}
        updated = row.get("endTime", row["createTime"])
        for direction, prefix in (("inputs", "input"), ("outputs", "output")):
            lists = {}
            for name, value in (io.get(direction, {}).get("parameters") or {}).items():
                metadata[f"{prefix}:{name}"] = value
            for name, artifacts in (io.get(direction, {}).get("artifacts") or {}).items():
                times = {"createTime": row["createTime"], "updateTime": updated}
                lists[name] = {
                    "artifacts": [
                        {**a, "uri": gcs_uri(a.get("uri", "")), "state": "LIVE", **times}
                        for a in artifacts
                    ]
                }
            if lists:
                row[direction] = lists
        row["execution"] = {
            "displayName": row["taskName"],
            "state": EXECUTION_STATES.get(row["state"], "STATE_UNSPECIFIED"),
            "schemaTitle": EXECUTION_SCHEMAS.get(kind, "system.ContainerExecution"),
            "schemaVersion": "0.0.1",
            "createTime": row["createTime"],
            "updateTime": updated,
            "metadata": metadata,
        }
        details.append(row)
    return details
