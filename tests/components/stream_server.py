"""A scripted streaming model server with known timings, on 127.0.0.1 (load-test tests only).

Answers any POST with server-sent events in the OpenAI completions chunk shape: the first
token after `ttft_s`, then one every `itl_s`, `tokens` in all, then `data: [DONE]`.
Modes for the bad cases:
    ok       as above
    midway   stops after half the tokens without [DONE] (the body ends cleanly)
    garbage  the second chunk is not JSON
    silent   never sends a token (holds the request open for `silent_s`)
    zero     [DONE] with no token at all
    error    an error event after the first token
    plain    the non-streaming Vertex predict answer (for a body without "stream")
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("ok", "midway", "garbage", "silent", "zero", "error")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that hung up mid-stream
        pass


class StreamServer:
    def __init__(
        self,
        mode: str = "ok",
        ttft_s: float = 0.150,
        itl_s: float = 0.020,
        tokens: int = 8,
        silent_s: float = 10.0,
    ):
        assert mode in MODES
        self.mode, self.ttft_s, self.itl_s, self.tokens = mode, ttft_s, itl_s, tokens
        self.silent_s = silent_s
        self.requests = 0
        self.paths: set[str] = set()
        self.auth_headers: set[str | None] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _event(self, body) -> None:
                text = body if isinstance(body, str) else json.dumps(body)
                self._chunk(f"data: {text}\n\n".encode())

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with server._lock:
                    server.requests += 1
                    server.paths.add(self.path)
                    server.auth_headers.add(self.headers.get("Authorization"))
                if not body.get("stream"):
                    data = json.dumps(
                        {"predictions": [{"generated_text": "x", "output_tokens": server.tokens}]}
                    ).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                try:
                    self._stream(body)
                except (BrokenPipeError, ConnectionResetError):
                    return

            def _stream(self, body) -> None:
                mode = server.mode
                if mode == "silent":
                    server._stop.wait(server.silent_s)
                    self.close_connection = True
                    return
                started = time.perf_counter()
                count = 0 if mode == "zero" else server.tokens
                if mode == "midway":
                    count = server.tokens // 2
                for i in range(count):
                    # Sleep to the token's scheduled time, not by a fixed step: no drift.
                    due = started + server.ttft_s + i * server.itl_s
                    time.sleep(max(0.0, due - time.perf_counter()))
                    if mode == "garbage" and i == 1:
                        self._event("{not json")
                        break
                    if mode == "error" and i == 1:
                        self._event({"error": {"code": 500, "message": "boom"}})
                        break
                    finish = "length" if i == server.tokens - 1 else None
                    choice = {"index": 0, "text": f" t{i}", "finish_reason": finish}
                    self._event({"object": "text_completion", "choices": [choice]})
                if mode in ("ok", "zero"):
                    self._event("[DONE]")
                self._chunk(b"")  # the end of the chunked body

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> StreamServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
