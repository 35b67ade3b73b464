"""Run the emulator: open the state, recover deployed models, serve HTTP, stop cleanly.

"Stop" (SIGINT/SIGTERM/Ctrl-C) stops every model-server process this emulator started
(SIGTERM to its process group, SIGKILL after a grace period). The state stays in SQLite:
models, endpoints, deployed models and operations are all there on the next start, and
the deployed models are started again (adopted instead if their process still runs,
e.g. after the emulator was killed with SIGKILL).

One emulator per state folder: an exclusive lock on `<state-dir>/emulator.lock` (released by
the kernel when the process dies, however it dies); a second one exits 2.

`--exit-with-fd FD` ties the emulator to an owner (`deploytest run`): FD is the read end of
a pipe whose write end only the owner holds. When the owner dies, even by SIGKILL, the
kernel closes that end, the read returns EOF, and the emulator undeploys every model,
stops every model server and exits. No PID is polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from emulator.faults import Faults

log = logging.getLogger("emulator")


@dataclass
class ServerConfig:
    """Everything `deploytest emulator` is started with."""

    state_dir: Path
    gcs_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    deploy_timeout_s: float = 120.0
    faults: Faults = field(default_factory=Faults)
    exit_with_fd: int | None = None
    max_model_servers: int = 8
    # Google's clients by environment only (emulator/google_front.py)
    env_file: Path | None = None
    project: str = "deploytest-local"
    operation_hold_s: float = 30.0
    # Vertex AI Pipelines: more image repositories whose code is installed here
    local_images: tuple[str, ...] = ()
    # machine type -> container variables (emulator/machines.py); None: off
    machine_profiles: str | None = None


class StateInUse(Exception):
    """Another emulator holds the state folder."""


def lock_state_dir(state_dir: Path):
    """Take the state folder's exclusive lock; the open file holds it until closed."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = open(state_dir / "emulator.lock", "a+")  # noqa: SIM115 (held for the lifetime)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise StateInUse(
            f"the state folder {state_dir} is in use by another emulator (pid {owner}); "
            "stop it or give another --state-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def watch_owner(fd: int, on_gone) -> threading.Thread:
    """Call `on_gone()` once the owner's end of the pipe `fd` is closed (EOF)."""

    def wait() -> None:
        try:
            while os.read(fd, 1):
                pass  # the owner never writes; tolerate it anyway
        except OSError:
            pass
        on_gone()

    thread = threading.Thread(target=wait, name="owner-watch", daemon=True)
    thread.start()
    return thread


def run(config: ServerConfig) -> int:
    """Serve until SIGINT/SIGTERM (or the owner's death); always stop the model-server
    processes. Returns 0, or 2 when the state folder is in use."""
    import uvicorn

    from emulator.app import build_app
    from emulator.deployments import Deployments
    from emulator.faults import FaultState
    from emulator.operations import Operations
    from emulator.pipeline_jobs import PipelineJobs
    from emulator.service import Vertex
    from emulator.store import Store

    state_dir = config.state_dir.resolve()
    try:
        state_lock = lock_state_dir(state_dir)
    except StateInUse as exc:
        print(f"deploytest emulator: {exc}", file=sys.stderr, flush=True)
        return 2
    gcs_dir = (config.gcs_dir or state_dir / "gcs").resolve()
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    gcs_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[
            logging.FileHandler(state_dir / "logs" / "emulator.log"),
            logging.StreamHandler(),
        ],
    )

    store = Store(state_dir / "state.sqlite3")
    ops = Operations(store)
    faults = FaultState(config.faults)
    from emulator.machines import MachineProfiles

    machines = MachineProfiles.load(config.machine_profiles)
    deployments = Deployments(
        store, ops, faults, state_dir, gcs_dir, config.deploy_timeout_s, machines
    )
    vertex = Vertex(store, ops, deployments, max_model_servers=config.max_model_servers)
    for problem in vertex.stored_problems():
        log.warning("stored resource breaks a rule (kept; listable and deletable): %s", problem)
    from emulator.pipeline_jobs import allowed_image_prefixes, repository_prefixes

    images = (*allowed_image_prefixes(), *repository_prefixes(*config.local_images))
    pipelines = PipelineJobs(store, ops, state_dir, images=images)
    pipelines.recover()
    app = build_app(vertex, faults, pipelines)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, config.port))
    port = sock.getsockname()[1]
    url = f"http://{config.host}:{port}"

    from emulator.google_front import GoogleFront

    google = GoogleFront(
        state_dir, gcs_dir, app, vertex, url, config.project, config.operation_hold_s
    )
    deployments.client_env = google.env
    pipelines.attach(google.env, google.storage, google.registry)

    class Server(uvicorn.Server):
        """uvicorn server that leaves signals to `run`: no re-raise before clean-up."""

        @contextlib.contextmanager
        def capture_signals(self):
            yield

    server = Server(
        uvicorn.Config(
            app, log_level="warning", timeout_graceful_shutdown=3, lifespan="on", access_log=False
        )
    )

    def front_server(front_app):
        return Server(
            uvicorn.Config(
                front_app,
                log_level="warning",
                timeout_graceful_shutdown=3,
                lifespan="on",
                access_log=False,
            )
        )

    def on_signal(signum, frame):
        log.info("signal %s: stopping", signum)
        if server.should_exit:
            server.force_exit = True
        server.should_exit = True
        google.request_stop(force=server.force_exit)

    def owner_gone() -> None:
        log.warning("the owner of this emulator is gone: undeploying every model, then exiting")
        pipelines.stop_all("The emulator's owner is gone.")
        vertex.undeploy_everything()
        server.should_exit = True
        google.request_stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        deployments.recover()
        if config.exit_with_fd is not None:
            watch_owner(config.exit_with_fd, owner_gone)

        async def main():
            task = asyncio.create_task(server.serve(sockets=[sock]))
            front = asyncio.create_task(google.serve(front_server))
            while not server.started and not task.done():
                await asyncio.sleep(0.02)
            if server.started:
                info = {"url": url, "pid": os.getpid(), "state_dir": str(state_dir)}
                (state_dir / "emulator.json").write_text(json.dumps(info) + "\n")
                google.write_files(state_dir, config.env_file)
                print(f"emulator listening on {url}", flush=True)
            await task
            google.request_stop()
            await front

        asyncio.run(main())
    finally:
        pipelines.stop_all("The emulator stopped while the job ran.")
        deployments.shutdown()
        google.close(state_dir, config.env_file)
        store.close()
        sock.close()
        state_lock.close()
        try:
            (state_dir / "emulator.json").unlink()
        except FileNotFoundError:
            pass
        for s, handler in previous.items():
            signal.signal(s, handler)
        log.info("emulator stopped")
        sys.stdout.flush()
    return 0
