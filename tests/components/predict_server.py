"""A tiny stand-in for a deployed model: answers the Vertex predict contract on 127.0.0.1.

Only for load-test tests (the real model server lives in serving/). Modes:
    ok     {"predictions": [{"generated_text": "...", "output_tokens": max_new_tokens}]}
    wrong  200 but the predictions lack generated_text (a model that answers wrongly)
    flaky  like ok, but every `fail_every`-th request gets 503
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class PredictServer:
    def __init__(self, mode: str = "ok", delay_s: float = 0.005, fail_every: int = 3):
        assert mode in ("ok", "wrong", "flaky")
        self.mode = mode
        self.delay_s = delay_s
        self.fail_every = fail_every
        self.requests = 0
        self.bad_paths: list[str] = []
        self.texts: list[str] = []
        self.auth_headers: set[str | None] = set()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            disable_nagle_algorithm = True

            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not (self.path.endswith(":predict") or self.path == "/predict"):
                    server.bad_paths.append(self.path)
                    self._send(404, {"error": {"code": 404, "message": f"no route {self.path}"}})
                    return
                try:
                    body = json.loads(raw)
                    text = body["instances"][0]["text"]
                    n = int(body.get("parameters", {}).get("max_new_tokens", 16))
                except (ValueError, KeyError, IndexError, TypeError):
                    self._send(400, {"error": {"code": 400, "message": "bad body"}})
                    return
                with server._lock:
                    server.requests += 1
                    server.texts.append(text)
                    server.auth_headers.add(self.headers.get("Authorization"))
                    count = server.requests
                if server.delay_s:
                    time.sleep(server.delay_s)
                if server.mode == "flaky" and count % server.fail_every == 0:
                    self._send(503, {"error": {"code": 503, "message": "overloaded"}})
                elif server.mode == "wrong":
                    self._send(200, {"predictions": [{"text": text, "output_tokens": n}]})
                else:
                    answer = {"generated_text": f"{text} ...", "output_tokens": n}
                    self._send(200, {"predictions": [answer]})

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> PredictServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
