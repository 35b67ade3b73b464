"""Run the model server: listen at once, load the model in a background thread.

Shared by `python -m serving` (the container entrypoint) and `deploytest serve`.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

from serving.app import ServerState, create_app
from serving.config import ConfigError, Settings, add_server_arguments, settings_from
from serving.http_limits import header_timeout_protocol

log = logging.getLogger("serving")


def _load(settings: Settings, state: ServerState, scratch: Path, on_failure) -> None:
    """Load the model, warm it up and start the batcher; on any error mark the state failed."""
    try:
        if settings.load_delay_s:
            time.sleep(settings.load_delay_s)
        from serving.batching import Batcher
        from serving.generation import Generator, GenParams
        from serving.storage import resolve_model_dir

        model_dir = resolve_model_dir(settings.model_uri, scratch)
        started = time.monotonic()
        generator = Generator(model_dir, step_delay_s=settings.step_delay_ms / 1000)
        # One tiny generate so the first real request does not pay for lazy initialisation.
        generator.generate(["warm up"], GenParams(max_new_tokens=2))
        batcher = Batcher(
            generator.generate, settings.max_batch_size, settings.max_batch_wait_ms / 1000
        )
        batcher.start()
        state.ready(batcher)
        log.info(
            "model %s ready in %.1fs on %s (max batch %d, wait %g ms, step delay %g ms)",
            settings.model_uri,
            time.monotonic() - started,
            generator.device,
            settings.max_batch_size,
            settings.max_batch_wait_ms,
            settings.step_delay_ms,
        )
    except BaseException as exc:  # any failure must reach health and the exit code
        state.failed(f"{type(exc).__name__}: {exc}")
        log.error("model failed to load: %s; exiting in %gs", state.error, settings.fail_exit_s)
        on_failure()


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run_server(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT (exit 0) or a failed model load (exit 1)."""
    import uvicorn

    state = ServerState()
    app = create_app(settings, state)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="info",
            access_log=False,  # one line per prediction would cost more than a tiny model
            timeout_graceful_shutdown=10,
            http=header_timeout_protocol(settings.read_timeout_s),
        )
    )

    def stop_later() -> None:
        timer = threading.Timer(settings.fail_exit_s, lambda: setattr(server, "should_exit", True))
        timer.daemon = True
        timer.start()

    scratch = Path(tempfile.mkdtemp(prefix="deploytest-model-"))
    loader = threading.Thread(
        target=_load, args=(settings, state, scratch, stop_later), name="loader", daemon=True
    )
    loader.start()

    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the
    # handler that was in place before it started. Ours only asks uvicorn to stop (which
    # also covers a signal that lands before uvicorn installs its own handlers), so the
    # clean-up below runs and a graceful stop exits 0 instead of dying by the signal.
    def on_signal(signum: int, frame) -> None:
        log.info("stopping on %s", signal.Signals(signum).name)
        server.should_exit = True

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if state.batcher is not None:
            state.batcher.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    if not server.started:
        log.error("server did not start on %s:%d", settings.host, settings.port)
        return 1
    return 1 if state.status == "failed" else 0


def build_parser(prog: str = "python -m serving") -> argparse.ArgumentParser:
    """The parser `python -m serving` uses; `deploytest serve` registers the same flags."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_server_arguments(parser)
    return parser


DESCRIPTION = (
    "Serve a causal language model (save_pretrained layout, e.g. the GPT-2 demo model) over "
    "HTTP under Vertex AI's custom-container contract: AIP_HTTP_PORT, AIP_HEALTH_ROUTE, "
    "AIP_PREDICT_ROUTE and AIP_STORAGE_URI (a local directory or gs://, downloaded first). "
    "The port opens at once; health answers 503 until the model is loaded, then 200; a "
    "failed load exits non-zero. Concurrent predictions are batched into one generate call. "
    "GET /stats reports requests, generate calls and batch sizes. Flags override env vars."
)


def main_from_args(args: argparse.Namespace) -> int:
    """Validate settings from flags + env and run the server; 2 on a configuration error."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return 2
    return run_server(settings)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m serving`."""
    return main_from_args(build_parser().parse_args(argv))
