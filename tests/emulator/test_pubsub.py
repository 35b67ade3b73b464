"""The emulator's Pub/Sub publish (emulator/pubsub.py), reached as the clean-up task reaches
it: components.runtime.notify.publish (google-auth's AuthorizedSession, the REST call to
pubsub.googleapis.com) with only the emulator's env file applied, through its proxy and
HTTPS front."""

from __future__ import annotations

import json
import textwrap

from emulator.launcher import EmulatorProcess
from emulator.pubsub import MAX_MESSAGES, read_messages
from tests.emulator.test_google_clients import run_with_env

PUBLISH = """
import json, requests
from components.runtime.notify import build_message, publish, send_all
status = {"state": "CANCELLED", "error_message": "cancelled",
          "pipeline_job_resource_name": "projects/p/locations/l/pipelineJobs/j"}
message = build_message(status, {"left": [], "cost": {"usd": 0.5}})
print(publish("projects/deploytest-local/topics/runs", message, 10))
# a malformed topic is Pub/Sub's 400, and send_all reports it without raising
print(send_all(message, topic="projects/deploytest-local/topics/goog-x", timeout_s=5,
               log=lambda _: None))
# no token: 401
print(requests.post("https://pubsub.googleapis.com/v1/projects/p/topics/abc:publish",
                    json={"messages": [{"data": "eA=="}]}).status_code)
"""


def test_publish_through_the_front_is_stored_bounded_and_readable(tmp_path):
    env_file = tmp_path / "emulator.env"
    state = tmp_path / "emu"
    with EmulatorProcess(state, extra_args=["--env-file", str(env_file)]):
        proc = run_with_env(env_file, ["-c", textwrap.dedent(PUBLISH)], timeout=120)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        ok, refused, unauthenticated = proc.stdout.strip().splitlines()[-3:]
        assert ok == "message 1"
        assert "error: HTTPError: 400" in refused
        assert unauthenticated == "401"
    (kept,) = read_messages(state)
    assert kept["topic"] == "projects/deploytest-local/topics/runs"
    assert kept["attributes"] == {"outcome": "CANCELLED"}
    data = json.loads(kept["data"])
    assert data["deploytest"]["outcome"] == "CANCELLED" and data["deploytest"]["cost"]["usd"] == 0.5
    assert MAX_MESSAGES == 1000  # the newest ones are kept (a deque of this length)
