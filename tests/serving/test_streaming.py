"""`"stream": true`: server-sent events in the OpenAI completions chunk shape, batched."""

from __future__ import annotations

import concurrent.futures
import json

import httpx

from tests.serving.test_server import PROMPTS, predict, stats


def stream(server, body: dict, timeout: float = 30) -> tuple[httpx.Response, list]:
    """POST with "stream": true; the response and its parsed `data:` events ("[DONE]" kept)."""
    events = []
    with httpx.stream(
        "POST", f"{server.url}/predict", json={**body, "stream": True}, timeout=timeout
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = line[len("data: ") :]
                events.append(data if data == "[DONE]" else json.loads(data))
    return response, events


def text_of(events: list, index: int = 0) -> tuple[str, int, list]:
    """(joined text, token chunks, finish reasons) of one choice index."""
    chunks = [c for e in events if isinstance(e, dict) for c in e["choices"] if c["index"] == index]
    return (
        "".join(c["text"] for c in chunks),
        sum(1 for c in chunks if c["finish_reason"] is None or c["text"]),
        [c["finish_reason"] for c in chunks if c["finish_reason"]],
    )


def test_a_stream_has_one_chunk_per_token_and_the_same_text(batching_server):
    body = {"instances": [{"text": "hello world"}], "parameters": {"max_new_tokens": 6}}
    expected = predict(batching_server, body).json()["predictions"][0]
    response, events = stream(batching_server, body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    token_chunks = [e for e in events[:-1] if e["choices"]]
    assert len(token_chunks) == expected["output_tokens"] == 6
    for chunk in token_chunks:
        assert chunk["object"] == "text_completion" and chunk["id"].startswith("cmpl-")
        assert set(chunk["choices"][0]) >= {"index", "text", "finish_reason"}
    text, _, finishes = text_of(events)
    assert text == expected["generated_text"]
    assert finishes == ["length"]
    assert events[-2]["usage"]["completion_tokens"] == 6


def test_streams_are_batched_and_match_one_at_a_time_answers(batching_server, unbatched_server):
    body = lambda p: {"instances": [{"text": p}], "parameters": {"max_new_tokens": 8}}  # noqa: E731
    expected = [predict(unbatched_server, body(p)).json()["predictions"][0] for p in PROMPTS]
    before = stats(batching_server)
    with concurrent.futures.ThreadPoolExecutor(len(PROMPTS)) as pool:
        answers = list(pool.map(lambda p: stream(batching_server, body(p)), PROMPTS))
    after = stats(batching_server)
    for (response, events), want in zip(answers, expected, strict=True):
        assert response.status_code == 200
        assert text_of(events)[0] == want["generated_text"]
    assert after["generate_calls"] - before["generate_calls"] < len(PROMPTS)


def test_several_instances_stream_under_their_index(batching_server):
    body = {"instances": [{"text": "a b c"}, {"prompt": "x y", "max_tokens": 3}]}
    response, events = stream(batching_server, body)
    assert response.status_code == 200 and events[-1] == "[DONE]"
    assert text_of(events, 1)[2] == ["length"]
    assert events[-2]["usage"]["completion_tokens"] == 16 + 3


def test_a_bad_stream_flag_or_body_is_a_400_json(batching_server):
    bad = httpx.post(
        f"{batching_server.url}/predict",
        json={"instances": [{"text": "a"}], "stream": "yes"},
        timeout=10,
    )
    assert bad.status_code == 400 and "stream" in bad.json()["error"]["message"]
    response, events = stream(batching_server, {"instances": []})
    assert response.status_code == 400 and events == []
    assert predict(batching_server, {"instances": [{"text": "alive"}]}).status_code == 200
