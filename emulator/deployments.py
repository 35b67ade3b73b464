"""Deployed models as local processes: deploy, undeploy/abort, recovery after a restart.

A deploy runs in a thread: start the container command, wait for the health route to
answer 200 (bounded by the deploy timeout), then mark the deployed model READY, apply the
requested traffic split and finish the operation. A deploy that fails removes its
deployed model and stops its process, as Vertex AI does; an undeploy (or an operation
cancel) during a deploy aborts it. Stopping the emulator stops every process but keeps
the records, so `recover()` on the next start adopts or restarts them.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from emulator import processes
from emulator import resources as res
from emulator.faults import FaultState
from emulator.machines import MachineProfiles
from emulator.model_versions import ModelVersions
from emulator.operations import Operations
from emulator.store import DeployedRow, Store

log = logging.getLogger("emulator.deployments")

PENDING_TRAFFIC = "_trafficSplit"  # private key in the stored DeployedModel JSON


class DeployError(Exception):
    """A deploy that cannot complete; `status` is the canonical code for the operation."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Live:
    """In-memory handle of one deployed model while this emulator runs it."""

    endpoint: str
    dm_id: str
    operation: str = ""
    process: processes.ModelProcess | None = None
    abort: threading.Event = field(default_factory=threading.Event)
    abort_reason: str = ""  # "undeploy" | "cancel" | "shutdown"
    thread: threading.Thread | None = None


def expand_references(text: str, env: dict[str, str]) -> str:
    """Expand `$(NAME)` in a containerSpec command or args item from the container's env.

    Vertex AI documents it for ModelContainerSpec's `command` and `args` (REST v1,
    https://cloud.google.com/vertex-ai/docs/reference/rest/v1/ModelContainerSpec): the
    variables Vertex AI sets and those of the `env` field can be referenced as
    `$(VARIABLE_NAME)`, a reference that cannot be resolved is used unchanged, and `$$`
    escapes the syntax. As Kubernetes expands them: `$$` gives `$`, an unknown name or an
    unclosed `$(` stays as written, any other `$` is kept.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            close = text.find(")", i + 2) if nxt == "(" else -1
            if close != -1:
                name = text[i + 2 : close]
                out.append(env[name] if name in env else text[i : close + 1])
                i = close + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


def apply_traffic(endpoint: dict, new_split: dict | None, dm_id: str) -> None:
    """Apply a deploy request's traffic split ("0" = the new model) to an endpoint doc."""
    if new_split:
        endpoint["trafficSplit"] = {
            (dm_id if k == "0" else k): int(v) for k, v in new_split.items() if int(v) > 0
        }


class Deployments:
    """Runs and tracks the processes behind deployed models."""

    def __init__(
        self,
        store: Store,
        ops: Operations,
        faults: FaultState,
        state_dir: Path,
        gcs_dir: Path,
        deploy_timeout_s: float,
        machines: MachineProfiles | None = None,
    ):
        self.machines = machines or MachineProfiles()
        self.store = store
        self.ops = ops
        self.faults = faults
        self.models = ModelVersions(store)
        self.logs_dir = state_dir / "logs"
        self.gcs_dir = gcs_dir
        # The environment of Google's clients (emulator/envfile.py), set by the server: a
        # model server downloads a gs:// artifactUri through it, as a container on Vertex AI.
        self.client_env: dict[str, str] = {}
        self.deploy_timeout_s = deploy_timeout_s
        self._live: dict[tuple[str, str], Live] = {}
        self._lock = threading.Lock()
        self._recovering = 0
        self._stopping = False

    # -- queries --------------------------------------------------------------------------
    def process_for(self, endpoint: str, dm_id: str) -> processes.ModelProcess | None:
        """The running process of a deployed model, if any."""
        live = self._live.get((endpoint, dm_id))
        return live.process if live else None

    def running(self) -> list[dict]:
        """Every model-server process this emulator runs (for the admin API)."""
        out = []
        with self._lock:
            lives = list(self._live.values())
        for live in lives:
            proc = live.process
            if proc is not None and proc.alive():
                out.append(
                    {
                        "pid": proc.pid,
                        "port": proc.port,
                        "endpoint": live.endpoint,
                        "deployedModelId": live.dm_id,
                        "log": str(proc.log_path),
                    }
                )
        return out

    @property
    def recovering(self) -> int:
        """How many deployed models are still being adopted/restarted after a start."""
        return self._recovering

    # -- deploy ---------------------------------------------------------------------------
    def begin(self, endpoint: str, dm_id: str, operation: str) -> None:
        """Start deploying a recorded (DEPLOYING) deployed model in the background."""
        row = self.store.get_deployed(endpoint, dm_id)
        fault = self.faults.get().deploy_fault_for(res.machine_type(row.data) if row else "")
        live = Live(endpoint, dm_id, operation)
        with self._lock:
            self._live[(endpoint, dm_id)] = live
        live.thread = threading.Thread(
            target=self._deploy, args=(live, fault, None), name=f"deploy-{dm_id}", daemon=True
        )
        live.thread.start()

    def _command_env(
        self, row: DeployedRow, port: int, fault: str | None = None
    ) -> tuple[list[str], dict, str]:
        # the version the deploy resolved to (`models/ID@2`, `@alias`: DeployedModel.model)
        model = self.models.version_doc(row.data["model"], row.data.get("modelVersionId"))
        if model is None:
            raise DeployError("NOT_FOUND", f"Model {row.data['model']} not found.")
        spec = model.get("containerSpec", {})
        command = list(spec.get("command", [])) + list(spec.get("args", []))
        if not command:
            raise DeployError("INVALID_ARGUMENT", "The model's containerSpec has no command.")
        health = spec.get("healthRoute") or res.DEFAULT_HEALTH_ROUTE
        endpoint_id = row.endpoint.rsplit("/", 1)[-1]
        parts = row.endpoint.split("/")
        machine = row.data.get("dedicatedResources", {}).get("machineSpec", {})
        # the emulator's stand-in for the machine (emulator/machines.py); the spec's own win
        container_env = self.machines.env_for(
            machine.get("machineType", ""), machine.get("acceleratorType", "")
        )
        container_env.update({e["name"]: e.get("value", "") for e in spec.get("env", [])})
        container_env.update(
            {
                "AIP_HTTP_PORT": str(port),
                "AIP_HEALTH_ROUTE": health,
                "AIP_PREDICT_ROUTE": spec.get("predictRoute") or res.DEFAULT_PREDICT_ROUTE,
                "AIP_STORAGE_URI": self._storage_uri(model),
                "AIP_DEPLOYED_MODEL_ID": row.id,
                "AIP_ENDPOINT_ID": endpoint_id,
                "AIP_MACHINE_TYPE": res.machine_type(row.data),
                "AIP_MODE": "PREDICTION",
                "AIP_MODE_VERSION": "1.0.0",
                "AIP_PROJECT_NUMBER": parts[1],
                "AIP_REGION": parts[3],
                "AIP_MODEL_DIR": self._storage_uri(model),
            }
        )
        if fault == "wrong-weights":
            other = self._other_weights(container_env["AIP_STORAGE_URI"], row.id)
            container_env["AIP_STORAGE_URI"] = container_env["AIP_MODEL_DIR"] = other
        # only what Vertex AI documents as referable: the spec's env and its AIP_* variables
        command = [expand_references(part, container_env) for part in command]
        return command, {**self.client_env, **container_env}, health

    def _other_weights(self, storage: str, dm_id: str) -> str:
        """The `wrong-weights` fault: a noisy copy of the artifact's weights, handed to the
        container as its AIP_STORAGE_URI (the endpoint then answers as another model)."""
        from emulator.faults import write_other_weights

        if not Path(storage).is_dir():
            raise DeployError(
                "FAILED_PRECONDITION",
                f"fault wrong-weights: the model's artifact {storage} is not a local folder",
            )
        return str(write_other_weights(storage, self.logs_dir.parent / "wrong-weights" / dm_id))

    def _storage_uri(self, model: dict) -> str:
        """`gs://` as is when Cloud Storage is served (Vertex AI hands the container a gs://
        URI; it points at Vertex's copy of the artifacts there, here at the original);
        otherwise the `--gcs-dir` path, and other URIs unchanged."""
        uri = model.get("artifactUri", "")
        if self.client_env and uri.startswith("gs://"):
            return uri
        return processes.local_storage_path(uri, self.gcs_dir)

    def _start(
        self, live: Live, row: DeployedRow, fault: str | None = None
    ) -> processes.ModelProcess:
        port = processes.free_port()
        command, env, health = self._command_env(row, port, fault)
        log_path = self.logs_dir / f"{row.endpoint.rsplit('/', 1)[-1]}-{row.id}.log"
        proc = processes.start(command, env, port, log_path, health)
        live.process = proc
        self.store.update_deployed(
            row.endpoint, row.id, pid=proc.pid, pid_create_time=proc.create_time, port=port
        )
        log.info(
            "started %s for %s/%s pid=%s port=%s", command, row.endpoint, row.id, proc.pid, port
        )
        return proc

    def _wait_healthy(self, live: Live, proc: processes.ModelProcess) -> None:
        deadline = time.monotonic() + self.deploy_timeout_s
        while True:
            if live.abort.is_set():
                return
            if not proc.alive():
                raise DeployError(
                    "INTERNAL",
                    f"Model server exited unexpectedly (exit code {proc.exit_code()}). "
                    f"Log tail:\n{proc.log_tail()}",
                )
            if proc.healthy(timeout=1.0):
                return
            if time.monotonic() > deadline:
                raise DeployError(
                    "DEADLINE_EXCEEDED",
                    f"Model server never became ready within {self.deploy_timeout_s:g}s "
                    f"(health route {proc.health_route} on port {proc.port}). "
                    f"Log tail:\n{proc.log_tail()}",
                )
            live.abort.wait(0.2)

    def _deploy(self, live: Live, fault: str | None, adopted: processes.ModelProcess | None):
        """Deploy thread body (also used to resume a deploy after a restart)."""
        key = (live.endpoint, live.dm_id)
        try:
            row = self.store.get_deployed(*key)
            if row is None:
                return
            proc = adopted or self._start(live, row, fault)
            if fault == "fail":
                live.abort.wait(0.3)
                if not live.abort.is_set():
                    proc.stop()
                    raise DeployError(
                        "INTERNAL",
                        "Model server exited unexpectedly (fault injected: deploy=fail). "
                        f"Log tail:\n{proc.log_tail()}",
                    )
            elif fault == "hang":
                live.abort.wait()
            else:
                self._wait_healthy(live, proc)
            with self.store.lock:
                if not live.abort.is_set():
                    self._mark_ready(live, row, "")
                    return
            self._aborted(live)
        except DeployError as err:
            self._deploy_failed(live, err)
        except Exception as exc:  # never leave a deploy hanging on a bug
            log.exception("deploy of %s failed", key)
            self._deploy_failed(live, DeployError("INTERNAL", f"Emulator error: {exc!r}"))

    def _mark_ready(self, live: Live, row: DeployedRow, message: str) -> None:
        """Mark READY, apply pending traffic, finish the pending deploy operation."""
        endpoint = self.store.get_resource(live.endpoint)
        data = dict(row.data)
        traffic = data.pop(PENDING_TRAFFIC, None)
        if endpoint is not None and traffic is not None:
            apply_traffic(endpoint, traffic, live.dm_id)
            endpoint["updateTime"] = res.now()
            self.store.put_resource("endpoints", live.endpoint.rsplit("/", 2)[0], endpoint)
        self.store.update_deployed(live.endpoint, live.dm_id, state="READY", message=message)
        self.store.replace_deployed_data(live.endpoint, live.dm_id, data)
        if row.operation:
            self.ops.succeed(
                row.operation,
                res.DEPLOY_MODEL_RESPONSE,
                {"deployedModel": data},
                metadata={"deploymentStage": "SUCCESSFULLY_DEPLOYED"},
            )
        log.info("deployed model %s/%s is ready %s", live.endpoint, live.dm_id, message)

    def _aborted(self, live: Live) -> None:
        if live.process is not None and live.abort_reason != "shutdown":
            live.process.stop()
        if live.abort_reason == "shutdown":
            return  # record and operation stay; the next start resumes the deploy
        status = "CANCELLED" if live.abort_reason == "cancel" else "ABORTED"
        self.ops.fail(
            live.operation,
            status,
            f"Deployment of DeployedModel {live.dm_id} was aborted by {live.abort_reason}.",
            metadata={"deploymentStage": "DEPLOYMENT_TERMINATED"},
        )

    def _deploy_failed(self, live: Live, err: DeployError) -> None:
        log.warning("deploy of %s/%s failed: %s", live.endpoint, live.dm_id, err.message)
        if live.process is not None:
            live.process.stop()
        if live.abort.is_set():
            self._aborted(live)
            return
        with self.store.lock:
            self.store.delete_deployed(live.endpoint, live.dm_id)
            with self._lock:
                self._live.pop((live.endpoint, live.dm_id), None)
            self.ops.fail(
                live.operation,
                err.status,
                err.message,
                metadata={"deploymentStage": "FAILED_TO_DEPLOY"},
            )

    # -- undeploy / cancel ----------------------------------------------------------------
    def stop(self, endpoint: str, dm_id: str, reason: str) -> None:
        """Abort an in-flight deploy (if any) and stop the process; keeps the DB record."""
        with self._lock:
            live = self._live.pop((endpoint, dm_id), None)
        if live is None:
            row = self.store.get_deployed(endpoint, dm_id)
            if row is not None and row.pid:
                proc = processes.adopt(
                    row.pid, row.pid_create_time or 0.0, row.port or 0, Path("/dev/null"), "/"
                )
                if proc is not None:
                    proc.stop()
            return
        live.abort_reason = reason
        live.abort.set()
        if live.thread is not None and live.thread is not threading.current_thread():
            live.thread.join(timeout=processes.GRACE_S + 10)
        if live.process is not None:
            live.process.stop()

    def shutdown(self) -> None:
        """Stop every process this emulator runs (records stay for the next start)."""
        self._stopping = True
        with self._lock:
            keys = list(self._live)
        threads = [
            threading.Thread(target=self.stop, args=(*key, "shutdown"), daemon=True) for key in keys
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=processes.GRACE_S + 15)

    # -- recovery after a restart ---------------------------------------------------------
    def recover(self) -> None:
        """Adopt or restart every recorded deployed model, in background threads."""
        rows = self.store.list_deployed()
        with self._lock:
            self._recovering = len(rows)
        for row in rows:
            threading.Thread(
                target=self._recover_one, args=(row,), name=f"recover-{row.id}", daemon=True
            ).start()

    def _recover_one(self, row: DeployedRow) -> None:
        try:
            self._recover(row)
        except Exception:
            log.exception("recovery of %s/%s failed", row.endpoint, row.id)
        finally:
            with self._lock:
                self._recovering -= 1

    def _recover(self, row: DeployedRow) -> None:
        live = Live(row.endpoint, row.id, row.operation)
        with self._lock:
            self._live[(row.endpoint, row.id)] = live
        health = res.DEFAULT_HEALTH_ROUTE
        try:
            _, _, health = self._command_env(row, row.port or 0)
        except DeployError:
            pass
        log_path = self.logs_dir / f"{row.endpoint.rsplit('/', 1)[-1]}-{row.id}.log"
        adopted = None
        if row.pid:
            adopted = processes.adopt(
                row.pid, row.pid_create_time or 0.0, row.port or 0, log_path, health
            )
        if row.state == "DEPLOYING":
            # The deploy was in flight: resume it (adopting the process if it lives on).
            live.process = adopted
            self._deploy(live, None, adopted)
            return
        if adopted is not None:
            live.process = adopted
            try:
                self._wait_healthy(live, adopted)
                with self.store.lock:
                    self._mark_ready(live, row, "adopted after an emulator restart")
                return
            except DeployError as err:
                log.warning("adopted process of %s/%s is unhealthy: %s", *live_key(live), err)
                adopted.stop()
        try:
            proc = self._start(live, row)
            self._wait_healthy(live, proc)
            if live.abort.is_set():
                return
            with self.store.lock:
                self._mark_ready(live, row, "restarted after an emulator restart")
        except DeployError as err:
            if live.process is not None:
                live.process.stop()
            message = f"Restart after an emulator restart failed: {err.message}"
            log.error("deployed model %s/%s: %s", row.endpoint, row.id, message)
            self.store.update_deployed(row.endpoint, row.id, state="FAILED", message=message)


def live_key(live: Live) -> tuple[str, str]:
    """(endpoint, deployed model id) of a live handle."""
    return live.endpoint, live.dm_id
