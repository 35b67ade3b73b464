"""The real server as a subprocess: the Vertex AI contract, validation, batching, shutdown."""

from __future__ import annotations

import concurrent.futures
import shutil
import sys
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import free_port, serving_cmd

PROMPTS = [f"the model endpoint answers {i} " + "token " * (i % 5) for i in range(16)]


def predict(server, body, timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{server.url}/predict", json=body, timeout=timeout)


def stats(server) -> dict:
    return httpx.get(f"{server.url}/stats", timeout=5).json()


def assert_alive(server) -> None:
    response = predict(server, {"instances": [{"text": "still there"}]})
    assert response.status_code == 200, response.text


def test_text_shape(batching_server):
    response = predict(
        batching_server,
        {
            "instances": [{"text": "hello world"}, {"text": "a"}],
            "parameters": {"max_new_tokens": 6},
        },
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 2
    for p in predictions:
        assert set(p) == {"generated_text", "output_tokens"}
        assert isinstance(p["generated_text"], str) and p["generated_text"]
        assert 1 <= p["output_tokens"] <= 6
    # The demo model's greedy continuation of this prompt does not hit EOS.
    assert predictions[0]["output_tokens"] == 6


def test_model_garden_vllm_shape(batching_server):
    response = predict(
        batching_server,
        {
            "instances": [
                {"prompt": "hello world", "max_tokens": 3, "temperature": 0.7},
                {"prompt": "hello world", "max_tokens": 5},
            ]
        },
    )
    assert response.status_code == 200, response.text
    first, second = response.json()["predictions"]
    assert (first["output_tokens"], second["output_tokens"]) == (3, 5)
    # Greedy: the shorter answer is a prefix of the longer one.
    assert second["generated_text"].startswith(first["generated_text"])


def test_max_new_tokens_is_capped(batching_server):
    # The batching server runs with --max-new-tokens-cap 24.
    response = predict(
        batching_server, {"instances": [{"text": "hello world"}], "parameters": {"max_tokens": 500}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["output_tokens"] == 24


def test_a_prompt_longer_than_the_context_is_truncated(batching_server):
    response = predict(batching_server, {"instances": [{"text": "token latency " * 400}]})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b'{"instances": [{"text": "a"}',
        b"[]",
        b'{"instances": []}',
        b'{"instances": [{"txt": "a"}]}',
        b'{"instances": [{"text": "a"}], "parameters": {"temperature": -1}}',
        b'{"instances": [{"text": "a"}], "parameters": {"max_new_tokens": "ten"}}',
        b'{"instances": [{"text": "a"}], "parameters": {"beam_width": 4}}',
        b'{"instances": [' + b'{"text": "a"},' * 64 + b'{"text": "a"}]}',
        b'{"instances": [{"text": "\\ud800"}]}',
        b"\xff\xfe",
    ],
)
def test_bad_bodies_get_400_json_and_the_server_lives_on(batching_server, content):
    response = httpx.post(
        f"{batching_server.url}/predict",
        content=content,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == 400 and error["message"]
    assert_alive(batching_server)


def test_unknown_routes_and_methods_answer_json(batching_server):
    missing = httpx.get(f"{batching_server.url}/nope", timeout=5)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == 404
    wrong = httpx.get(f"{batching_server.url}/predict", timeout=5)
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == 405


def test_seeded_sampling_is_deterministic_even_under_concurrency(batching_server):
    def body(seed):
        return {
            "instances": [{"text": "hello world"}, {"text": "the model"}],
            "parameters": {"do_sample": True, "temperature": 1.0, "top_p": 0.95, "seed": seed},
        }

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda s: predict(batching_server, body(s)).json(), [7] * 5 + [8]))
    assert all(a == answers[0] for a in answers[:5])
    assert answers[5] != answers[0]


def test_concurrent_requests_are_coalesced_and_split_back(batching_server, unbatched_server):
    body = lambda prompt: {"instances": [{"text": prompt}], "parameters": {"max_new_tokens": 8}}  # noqa: E731
    # One at a time, from the unbatched server: what each prompt must get back.
    expected = [predict(unbatched_server, body(p)).json()["predictions"] for p in PROMPTS]
    before = stats(batching_server)
    with concurrent.futures.ThreadPoolExecutor(len(PROMPTS)) as pool:
        answers = list(pool.map(lambda p: predict(batching_server, body(p)), PROMPTS))
    after = stats(batching_server)
    assert [a.json()["predictions"] for a in answers] == expected
    assert after["requests"] - before["requests"] == len(PROMPTS)
    calls = after["generate_calls"] - before["generate_calls"]
    assert calls < len(PROMPTS), after
    assert max(int(size) for size in after["batch_sizes"]) > 1


def test_batch_size_one_runs_one_generate_per_request(unbatched_server):
    body = {
        "instances": [{"text": "hello"}, {"text": "world"}],
        "parameters": {"max_new_tokens": 4},
    }
    before = stats(unbatched_server)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: predict(unbatched_server, body), range(8)))
    after = stats(unbatched_server)
    assert all(a.status_code == 200 for a in answers)
    assert after["requests"] - before["requests"] == 8
    assert after["generate_calls"] - before["generate_calls"] == 8  # a request is never split
    assert after["max_batch_size"] == 1


def deploytest_cmd() -> list[str]:
    script = Path(sys.executable).parent / "deploytest"
    return [str(script)] if script.exists() else [shutil.which("deploytest") or "deploytest"]


def test_deploytest_serve_answers_503_until_loaded(start_server, demo_model_dir):
    """`deploytest serve` is the same server; with a load delay health is seen before ready."""
    port = free_port()
    server = start_server(
        [*deploytest_cmd(), "serve", "--model-dir", str(demo_model_dir), "--host", "127.0.0.1"],
        port,
        # The port comes from the Vertex variable here; the delay is the documented test hook.
        env={"AIP_HTTP_PORT": str(port), "DEPLOYTEST_SERVING_LOAD_DELAY_S": "2"},
    )
    first = server.wait_until(lambda r: True, what="listening")
    assert first.status_code == 503 and first.json()["status"] == "loading"
    early = predict(server, {"instances": [{"text": "too early"}]})
    assert early.status_code == 503 and early.json()["error"]["code"] == 503
    server.wait_ready()
    assert_alive(server)
    assert server.stop() == 0


def test_a_model_that_fails_to_load_keeps_503_then_exits_nonzero(start_server, tmp_path):
    port = free_port()
    server = start_server(
        serving_cmd(tmp_path, port),  # an empty directory is no model
        port,
        env={"DEPLOYTEST_SERVING_FAIL_EXIT_S": "1.5"},
    )
    failed = server.wait_until(lambda r: r.json().get("status") == "failed", what="failed")
    assert failed.status_code == 503 and failed.json()["error"]
    assert server.proc.wait(30) == 1


def test_bad_configuration_exits_2_without_listening(start_server, demo_model_dir):
    port = free_port()
    server = start_server(serving_cmd(demo_model_dir, port, "--max-batch-size", "0"), port)
    assert server.proc.wait(30) == 2
    assert "max batch size" in server.output()
