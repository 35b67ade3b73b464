"""A stand-in model-server *container* for emulator tests (stdlib only).

Follows the Vertex AI custom-container contract: listens on AIP_HTTP_PORT, health on
AIP_HEALTH_ROUTE (503 until "loaded", then 200), predict on AIP_PREDICT_ROUTE echoing
`{"instances": [{"text": ...}]}` as `{"predictions": [{"generated_text": ..., ...}]}`.
Behaviour knobs (environment): FAKE_LOAD_S (seconds before healthy), FAKE_EXIT_CODE
(exit at once with this code), FAKE_CRASH_IF_EXISTS=PATH (exit 3 at start if PATH
exists), FAKE_NEVER_HEALTHY=1. A body with "stream": true gets two server-sent events
FAKE_STREAM_GAP_S (0.5) apart.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

START = time.monotonic()
LOAD_S = float(os.environ.get("FAKE_LOAD_S", "0.2"))
HEALTH = os.environ.get("AIP_HEALTH_ROUTE", "/health")
PREDICT = os.environ.get("AIP_PREDICT_ROUTE", "/predict")


class Handler(BaseHTTPRequestHandler):
    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        if self.path == HEALTH:
            loaded = time.monotonic() - START >= LOAD_S and not os.environ.get("FAKE_NEVER_HEALTHY")
            self._send(200 if loaded else 503, {"loaded": loaded})
        elif self.path == "/env":
            self._send(
                200, {k: v for k, v in os.environ.items() if k.startswith(("AIP_", "FAKE_"))}
            )
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self):  # noqa: N802
        if self.path != PREDICT:
            self._send(404, {"error": "not found"})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if body.get("stream") is True:
                self._stream()
                return
            instances = body["instances"]
            params = body.get("parameters") or {}
            preds = [
                {
                    "generated_text": f"echo: {inst['text']}",
                    "output_tokens": int(params.get("max_new_tokens", 1)),
                    "pid": os.getpid(),
                    "deployed_model_id": os.environ.get("AIP_DEPLOYED_MODEL_ID"),
                }
                for inst in instances
            ]
        except (ValueError, KeyError, TypeError) as exc:
            self._send(400, {"error": f"bad request: {exc!r}"})
            return
        self._send(200, {"predictions": preds})

    def _stream(self) -> None:
        """Two SSE events FAKE_STREAM_GAP_S apart, then [DONE]; the body ends at close."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for event in ("first", None, "second", "[DONE]"):
            if event is None:
                time.sleep(float(os.environ.get("FAKE_STREAM_GAP_S", "0.5")))
                continue
            self.wfile.write(f"data: {event}\n\n".encode())
            self.wfile.flush()

    def log_message(self, fmt, *args):
        sys.stderr.write("fake-model-server: " + fmt % args + "\n")


def main() -> None:
    flag = os.environ.get("FAKE_CRASH_IF_EXISTS")
    if flag and os.path.exists(flag):
        print(f"fake-model-server: {flag} exists, crashing", flush=True)
        sys.exit(3)
    if os.environ.get("FAKE_EXIT_CODE"):
        print("fake-model-server: crashing on purpose", flush=True)
        sys.exit(int(os.environ["FAKE_EXIT_CODE"]))
    server = ThreadingHTTPServer(
        ("127.0.0.1", int(os.environ.get("AIP_HTTP_PORT", "8080"))), Handler
    )
    print(f"fake-model-server: listening on {server.server_address}", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    main()
