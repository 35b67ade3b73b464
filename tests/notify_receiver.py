"""A webhook receiver on loopback for the run-end message: answers 200, 500, or reads the
body and never answers (until it is closed). Records every body it read."""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self, mode: str = "ok"):
        assert mode in ("ok", "500", "hang"), mode
        self.mode = mode
        self.bodies: list[dict] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.bodies.append(json.loads(raw))
                if receiver.mode == "hang":
                    receiver.release.wait(120)
                    return
                self.send_response(200 if receiver.mode == "ok" else 500)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@contextlib.contextmanager
def receiver(mode: str = "ok"):
    with Receiver(mode) as r:
        yield r
