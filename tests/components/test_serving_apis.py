"""The load test against every serving API it speaks (loadtests/apis.py): real Locust through
`deploytest loadtest`, against scripted containers that answer as their sources say
(tests/components/api_servers.py): counts, token sources, streams of several shapes, and a
wrong --api failing every request with its reason."""

from __future__ import annotations

import csv
import json

import pytest

from tests.components.api_servers import WORDS, ApiServer
from tests.components.test_cli_loadtest import loadtest

pytestmark = pytest.mark.usefixtures("no_process_left_behind")

PATHS = {
    "openai-completions": "/v1/completions",
    "openai-chat": "/v1/chat/completions",
    "vertex-vllm": "/generate",
    "tgi": "/vertex",
    "hf-inference-toolkit": "/predict",
}


def _run(server: ApiServer, out, *args, api=None):
    done = loadtest(
        "--url", server.url, "--predict-path", PATHS[server.api], "-o", str(out),
        "--duration", "2s", "--users", "2", "--max-new-tokens", "6",
        *(("--api", api) if api else ()), *args,
    )  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    return done, metrics


@pytest.mark.parametrize(
    ("api", "stream", "server_kwargs", "source"),
    [
        ("openai-completions", False, {}, "answer"),
        ("openai-completions", True, {"chunk_tokens": 3}, "answer"),
        ("openai-chat", False, {}, "answer"),
        # vLLM's role-only first chunk, several tokens a chunk, and no [DONE] at the end
        ("openai-chat", True, {"chunk_tokens": 2, "done": False}, "answer"),
        ("vertex-vllm", False, {}, "estimate"),
        ("tgi", False, {}, "estimate"),
        ("hf-inference-toolkit", False, {}, "estimate"),
    ],
)
def test_each_api_is_measured_as_its_server_answers(tmp_path, api, stream, server_kwargs, source):
    with ApiServer(api, **server_kwargs) as server:
        done, m = _run(server, tmp_path / "out", *(("--stream",) if stream else ()), api=api)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"serving API: {api} (given)" in done.stdout
    assert m["api"] == api and m["failures"] == 0 and m["requests"] > 0
    assert m["output_tokens_source"] == source
    if source == "answer":  # the server's own count, exactly
        assert m["output_tokens"] == server.completion_tokens
    else:  # no count in the answer, no tokenizer: bytes / 4, and said so
        assert 0 < m["output_tokens"] < server.completion_tokens * 4
    if stream:
        assert m["ttft_p50_ms"] is not None and m["itl_p50_ms"] is not None
        assert m["tpot_p50_ms"] is not None
    else:
        assert "ttft" in m["llm_unavailable"]


def test_the_models_tokenizer_counts_answers_without_a_count(tmp_path, demo_model_dir):
    from loadtests.tokens import load_counter

    with ApiServer("tgi") as server:
        done, m = _run(server, tmp_path / "out", "--tokenizer", str(demo_model_dir), api="tgi")
    assert done.returncode == 0, done.stdout + done.stderr
    count = load_counter(str(demo_model_dir))
    assert m["output_tokens_source"] == "tokenizer"
    assert m["output_tokens"] == sum(count(text) for text in server.texts)


def test_auto_picks_the_api_from_the_predict_path(tmp_path):
    with ApiServer("openai-completions", chunk_tokens=2) as server:
        done, m = _run(server, tmp_path / "out", "--stream")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "serving API: openai-completions (predict route /v1/completions)" in done.stdout
    assert m["api"] == "openai-completions" and m["output_tokens"] == server.completion_tokens


def test_a_wrong_api_fails_every_request_with_its_reason_and_exits_1(tmp_path):
    # The new user: our server's body sent to vLLM's /v1/completions.
    with ApiServer("openai-completions") as server:
        done, m = _run(server, tmp_path / "out", api="deploytest")
    assert done.returncode == 1, done.stdout + done.stderr
    assert m["requests"] > 0 and m["failures"] == m["requests"] == server.refused
    assert "every request failed" in done.stderr
    with (tmp_path / "out" / "locust_failures.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # one row, not one per request, saying why
    assert [row["Error"] for row in rows] == [
        "CatchResponseError('HTTP 400: prompt: Field required')"
    ]


def test_an_answer_of_the_wrong_shape_fails_with_a_short_reason(tmp_path):
    # A TGI route that answers the inference toolkit's nested lists instead of strings.
    with ApiServer("tgi", answer_as="hf-inference-toolkit") as server:
        done, m = _run(server, tmp_path / "out", api="tgi")
    assert done.returncode == 1
    assert m["failures"] == m["requests"] > 0
    with (tmp_path / "out" / "locust_failures.csv").open() as fh:
        errors = [row["Error"] for row in csv.DictReader(fh)]
    assert errors == ["CatchResponseError('a prediction is not a string')"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--api", "tgi", "--stream"], "--api tgi cannot stream"),
        (["--api", "nope"], "invalid choice: 'nope'"),
        (["--tokenizer", "/nonexistent"], "no tokenizer.json there"),
    ],
)
def test_bad_api_input_exits_2_before_anything_runs(tmp_path, args, message):
    out = tmp_path / "out"
    done = loadtest("--url", "http://127.0.0.1:9", "--predict-path", "/p", "-o", str(out), *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not out.exists()


def test_chat_sessions_send_the_history_and_ask_for_exact_lengths(tmp_path, demo_model_dir):
    """A 3-turn session workload: each turn sends the conversation so far, the answers
    as they streamed back, and vLLM's min_tokens/ignore_eos for the turn's length."""
    from loadtests.tokens import load_counter

    with ApiServer("openai-chat", chunk_tokens=2) as server:
        done, m = _run(
            server, tmp_path / "out", "--stream", "--workload", "chat-sessions",
            "--tokenizer", str(demo_model_dir), api="openai-chat",
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert m["failures"] == 0 and m["workload"]["sessions"] == {"turns": 3}
    assert server.length_fields == {(16, True)}  # chat-sessions.yaml: output_tokens 16
    answer = "".join(WORDS[i % len(WORDS)] for i in range(16))
    lengths = {len(messages) for messages in server.chats}
    assert lengths == {1, 3, 5}, lengths  # a turn, its history: user, assistant, user, ...
    for messages in server.chats:
        assert [x["role"] for x in messages] == ["user", "assistant"] * (len(messages) // 2) + [
            "user"
        ]
        assert all(x["content"] == answer for x in messages if x["role"] == "assistant")
    # input tokens: the history's, so later turns send more (48 is the longest first turn)
    count = load_counter(str(demo_model_dir))
    longest = max(sum(count(x["content"]) for x in messages) for messages in server.chats)
    assert 48 < m["achieved"]["input_tokens"]["max"] <= longest
