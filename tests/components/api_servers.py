"""Scripted serving containers on 127.0.0.1 that answer exactly as each container's source
says (the contracts and citations are in loadtests/apis.py), for the load test's contract
tests. Each refuses a body of another API's shape as its container does (HTTP 400), so a
wrong --api fails every request.

    openai-completions  vLLM's /v1/completions: `usage`; streamed `chunk_tokens` tokens a
                        chunk, a final usage chunk when `stream_options.include_usage`, [DONE]
    openai-chat         vLLM's /v1/chat/completions: a role-only first chunk, content chunks,
                        a finish chunk with an empty delta, usage, then [DONE] (or, with
                        `done=False`, a clean end without it)
    vertex-vllm         Model Garden vLLM `:predict`: predictions are strings
    tgi                 TGI's Vertex route: predictions are strings
    hf-inference-toolkit  predictions are lists of {generated_text}

Every request answers `max_tokens` "tokens" (words of WORDS); the server keeps what it
sent, so a test can compare the load test's counts with the server's.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = (" alpha", " beta", " gamma", " delta", " kappa")


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that hung up mid-stream
        pass


def _error(message: str) -> dict:
    # vLLM's ErrorResponse shape; the others differ in detail, not in the 400.
    return {"object": "error", "message": message, "type": "BadRequestError", "code": 400}


class ApiServer:
    def __init__(
        self,
        api: str,
        chunk_tokens: int = 1,
        itl_s: float = 0.002,
        done: bool = True,
        with_usage: bool = True,
        answer_as: str | None = None,
        port: int = 0,
    ):
        self.api, self.chunk_tokens, self.itl_s = api, chunk_tokens, itl_s
        self.answer_as = answer_as or api  # a container that answers in another's shape
        self.done, self.with_usage = done, with_usage
        self.completion_tokens = 0  # what successful answers carried
        self.texts: list[str] = []
        self.refused = 0
        self.paths: set[str] = set()
        self.chats: list[list] = []  # openai-chat: each request's messages, in order
        self.length_fields: set[tuple] = set()  # (min_tokens, ignore_eos) as they came
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def _json(self, code: int, payload) -> None:
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _event(self, payload) -> None:
                self._chunk(f"data: {json.dumps(payload)}\n\n".encode())

            def do_GET(self):  # the health route, whichever it is
                self._json(200, {"status": "ok"})

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                try:
                    body = json.loads(self.rfile.read(length))
                except ValueError:
                    return self._json(400, _error("not JSON"))
                with server._lock:
                    server.paths.add(self.path)
                    if isinstance(body, dict):
                        server.length_fields.add((body.get("min_tokens"), body.get("ignore_eos")))
                        if server.api == "openai-chat" and len(server.chats) < 10_000:
                            server.chats.append(body.get("messages"))
                request = server._parse(body)
                if isinstance(request, str):
                    with server._lock:
                        server.refused += 1
                    return self._json(400, _error(request))
                n, stream, usage = request
                words = [WORDS[i % len(WORDS)] for i in range(n)]
                text = "".join(words)
                if not stream:
                    payload = server._answer(text, n)
                    server._count(text, n)
                    return self._json(200, payload)
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                if server.api == "openai-chat":  # role-only first chunk: not a token
                    self._event(server._chat_chunk({"role": "assistant", "content": ""}))
                for start in range(0, n, server.chunk_tokens):
                    time.sleep(server.itl_s)
                    piece = "".join(words[start : start + server.chunk_tokens])
                    if server.api == "openai-chat":
                        self._event(server._chat_chunk({"content": piece}))
                    else:
                        self._event({"object": "text_completion", "choices": [
                            {"index": 0, "text": piece, "finish_reason": None}
                        ]})  # fmt: skip
                finish = {"index": 0, "finish_reason": "length"}
                if server.api == "openai-chat":
                    self._event({"object": "chat.completion.chunk", "choices": [
                        {**finish, "delta": {}}
                    ]})  # fmt: skip
                else:
                    self._event({"object": "text_completion", "choices": [{**finish, "text": ""}]})
                if usage:
                    counts = {"prompt_tokens": 3, "completion_tokens": n, "total_tokens": n + 3}
                    self._event({"choices": [], "usage": counts})
                if server.done:
                    self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")  # the body's clean end
                server._count(text, n)

        self._http = _Quiet(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    # -- the contract of each container -------------------------------------------------
    def _parse(self, body) -> tuple[int, bool, bool] | str:
        """(tokens, stream, usage chunk) of a well-formed request, or the refusal's text."""
        if not isinstance(body, dict):
            return "body is not an object"
        if self.api == "openai-completions":
            if not isinstance(body.get("prompt"), str) or "instances" in body:
                return "prompt: Field required"
        elif self.api == "openai-chat":
            if not isinstance(body.get("messages"), list):
                return "messages: Field required"
        else:
            instances = body.get("instances")
            if not isinstance(instances, list) or not instances:
                return "instances: Field required"
            first = instances[0]
            if self.api == "vertex-vllm" and not (isinstance(first, dict) and "prompt" in first):
                return "instances[0].prompt: Field required"
            if self.api == "tgi" and not (isinstance(first, dict) and "inputs" in first):
                return "Input validation error"
            if self.api == "hf-inference-toolkit" and not isinstance(first, str):
                return "inputs must be a string"
        if self.api in ("openai-completions", "openai-chat"):
            n = body.get("max_tokens")
            stream = bool(body.get("stream"))
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return (n if isinstance(n, int) else 16), stream, usage and self.with_usage
        if self.api == "vertex-vllm":
            return int(body["instances"][0].get("max_tokens", 16)), False, False
        if self.api == "tgi":
            params = body["instances"][0].get("parameters") or {}
            return int(params.get("max_new_tokens", 16)), False, False
        return int((body.get("parameters") or {}).get("max_new_tokens", 16)), False, False

    def _answer(self, text: str, n: int):
        usage = {"prompt_tokens": 3, "completion_tokens": n, "total_tokens": n + 3}
        api = self.answer_as
        if api == "openai-completions":
            choice = {"index": 0, "text": text, "finish_reason": "length"}
            return {"object": "text_completion", "choices": [choice], "usage": usage}
        if api == "openai-chat":
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": message, "finish_reason": "length"}
            return {"object": "chat.completion", "choices": [choice], "usage": usage}
        if api == "hf-inference-toolkit":
            return {"predictions": [[{"generated_text": text}]]}
        return {"predictions": [text]}  # vertex-vllm (raw_response), tgi

    @staticmethod
    def _chat_chunk(delta: dict) -> dict:
        choice = {"index": 0, "delta": delta, "finish_reason": None}
        return {"object": "chat.completion.chunk", "choices": [choice]}

    def _count(self, text: str, n: int) -> None:
        with self._lock:
            self.completion_tokens += n
            self.texts.append(text)

    def __enter__(self) -> ApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)


def main() -> None:
    """A container command: `python -m tests.components.api_servers API` serves on
    AIP_HTTP_PORT (as Vertex AI starts a custom container) until SIGTERM."""
    import os
    import signal
    import sys

    server = ApiServer(sys.argv[1], chunk_tokens=int(os.environ.get("CHUNK_TOKENS", "1")))
    server._http.server_close()
    server._http = _Quiet(
        ("127.0.0.1", int(os.environ["AIP_HTTP_PORT"])), server._http.RequestHandlerClass
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server._http.serve_forever()


if __name__ == "__main__":
    main()
