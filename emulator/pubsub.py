"""Pub/Sub's publish call (REST v1 `projects.topics.publish`), for the run-end message.

    POST https://pubsub.googleapis.com/v1/projects/P/topics/T:publish
    {"messages": [{"data": "<base64>", "attributes": {"k": "v"}}]}  ->  {"messageIds": ["1"]}

Reached through the HTTPS front like every Google host (a bearer token the emulator issued,
else 401). Only publish is emulated: no topics to create, no subscriptions. A deviation:
Pub/Sub answers 404 NOT_FOUND for a topic that does not exist (`infra/` creates the topic on
Google Cloud); the emulator accepts any well-formed topic name. Messages are kept, the
newest MAX_MESSAGES, in `<state-dir>/pubsub/messages.json` (`read_messages`), so a test can
read what a task published. Bounded: a request body of at most MAX_BODY_BYTES (Pub/Sub's
own limit is 10 MB a request), at most MAX_BATCH messages a request (Pub/Sub's: 1000).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import threading
import time
from collections import deque
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

# Topic names as Pub/Sub documents them: 3-255 characters, starting with a letter, of
# letters, digits, `-_.~+%`; not starting with `goog`.
_PUBLISH = re.compile(r"^/v1/projects/(?P<project>[^/]+)/topics/(?P<topic>[^/:]+):publish$")
_TOPIC_ID = re.compile(r"^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$")
MAX_MESSAGES = 1000
MAX_BATCH = 1000
MAX_BODY_BYTES = 1024 * 1024
FILE = "messages.json"


def _error(code: int, status: str, message: str) -> Response:
    return JSONResponse({"error": {"code": code, "message": message, "status": status}}, code)


def read_messages(state_dir: Path) -> list[dict]:
    """The messages the emulator whose state folder is `state_dir` kept, oldest first:
    {"topic", "messageId", "publishTime", "data" (decoded bytes as text), "attributes"}."""
    path = Path(state_dir) / "pubsub" / FILE
    if not path.is_file():
        return []
    return json.loads(path.read_text())


class PubSub:
    """The publish route (see the module docstring)."""

    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir) / "pubsub"
        self._lock = threading.Lock()
        self._messages: deque[dict] = deque(read_messages(state_dir), maxlen=MAX_MESSAGES)
        self._next = 1 + max((int(m["messageId"]) for m in self._messages), default=0)

    async def __call__(self, request: Request) -> Response:
        match = _PUBLISH.match(request.url.path)
        if match is None:
            return _error(404, "NOT_FOUND", "The emulator answers only topics.publish.")
        if request.method != "POST":
            return _error(405, "METHOD_NOT_ALLOWED", "topics.publish is a POST.")
        if not _TOPIC_ID.match(match["topic"]) or match["topic"].startswith("goog"):
            return _error(400, "INVALID_ARGUMENT", f"Invalid [topics] name: {match['topic']!r}.")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                message = f"Request body over the emulator's limit of {MAX_BODY_BYTES} bytes."
                return _error(413, "INVALID_ARGUMENT", message)
        try:
            body = json.loads(raw or b"{}")
            messages = body["messages"]
            assert isinstance(messages, list) and 0 < len(messages) <= MAX_BATCH
            decoded = [self._decode(m) for m in messages]
        except (ValueError, KeyError, TypeError, AssertionError, binascii.Error):
            return _error(
                400, "INVALID_ARGUMENT",
                f"The request needs 1 to {MAX_BATCH} messages, each with base64 `data` or "
                "`attributes` (string to string).",
            )  # fmt: skip
        topic = f"projects/{match['project']}/topics/{match['topic']}"
        with self._lock:
            ids = []
            for data, attributes in decoded:
                ids.append(str(self._next))
                self._messages.append(
                    {
                        "topic": topic,
                        "messageId": ids[-1],
                        "publishTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "data": data,
                        "attributes": attributes,
                    }
                )
                self._next += 1
            self._save()
        return JSONResponse({"messageIds": ids})

    @staticmethod
    def _decode(message) -> tuple[str, dict]:
        data = message.get("data", "")
        attributes = message.get("attributes") or {}
        if not isinstance(attributes, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
        ):
            raise TypeError("attributes")
        if not data and not attributes:
            raise ValueError("empty message")
        text = base64.b64decode(data, validate=True).decode("utf-8", "replace")
        return text, attributes

    def _save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(list(self._messages)))
        os.replace(tmp, self.dir / FILE)
