"""A loopback test double for the Google APIs `deploytest submit` calls: Vertex AI's
`pipelineJobs` (create, get) and `models` (get), and Cloud Storage object metadata.
The embedded emulator does not run pipeline jobs yet; this answers each GET of a job
with the next state of a scripted sequence (the last one repeats), so `--wait` can be
tested against the real SDK clients (REST transport, and STORAGE_EMULATOR_HOST for
google-cloud-storage)."""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


class FakePipelineService:
    def __init__(
        self,
        states: list[str],
        objects: set[str],
        error: str = "",
        model_found_after: int | None = 1,
        unavailable_gets: frozenset[int] = frozenset(),
        refuse_create: bool = False,
    ) -> None:
        self.states = list(states)
        self.unavailable_gets = unavailable_gets  # these job GETs (1-based) answer 503
        self.refuse_create = refuse_create  # create answers 400 INVALID_ARGUMENT
        self.attempts = 0
        # The n-th GET of a model finds it (None: never); earlier GETs answer 404.
        self.model_found_after = model_found_after
        self.model_gets = 0
        self.objects = set(objects)  # "bucket/object"
        self.error = error
        self.created: list[dict] = []
        self.job_ids: list[str] = []  # the pipelineJobId of each create
        self.gets = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakePipelineService:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _job(self, name: str, state: str) -> dict:
        job = {"name": name, "state": state, "displayName": "deploytest"}
        if state == "PIPELINE_STATE_FAILED" and self.error:
            job["error"] = {"code": 9, "message": self.error}
        return job

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                path = self.path.split("?")[0]
                m = re.fullmatch(r"/v1/(projects/[^/]+/locations/[^/]+)/pipelineJobs", path)
                if not m:
                    return self._send(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if fake.refuse_create:
                    error = {"code": 400, "message": "bad spec", "status": "INVALID_ARGUMENT"}
                    return self._send(400, {"error": error})
                fake.created.append(body)
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                job_id = query.get("pipelineJobId", [""])[0]
                fake.job_ids.append(job_id)
                name = f"{m[1]}/pipelineJobs/{job_id or f'job-{len(fake.created)}'}"
                self._send(200, fake._job(name, "PIPELINE_STATE_PENDING"))

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if re.fullmatch(r"/v1/projects/[^/]+/locations/[^/]+/pipelineJobs/[^/]+", path):
                    fake.attempts += 1
                    if fake.attempts in fake.unavailable_gets:
                        error = {"code": 503, "message": "try again", "status": "UNAVAILABLE"}
                        return self._send(503, {"error": error})
                    fake.gets += 1
                    state = fake.states[min(fake.gets, len(fake.states)) - 1]
                    return self._send(200, fake._job(path.removeprefix("/v1/"), state))
                if re.fullmatch(r"/v1/projects/[^/]+/locations/[^/]+/models/[^/]+", path):
                    fake.model_gets += 1
                    after = fake.model_found_after
                    if after is not None and fake.model_gets >= after:
                        return self._send(200, {"name": unquote(path.removeprefix("/v1/"))})
                    return self._send(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
                m = re.fullmatch(r"/storage/v1/b/([^/]+)/o/(.+)", path)
                if m:
                    key = f"{m[1]}/{unquote(m[2])}"
                    if key in fake.objects:
                        return self._send(200, {"bucket": m[1], "name": unquote(m[2])})
                return self._send(404, {"error": {"code": 404, "message": "Not Found"}})

        return Handler
