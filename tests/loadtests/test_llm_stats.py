"""read_sse_stream on bodies cut anywhere: what a socket read brings is not an event."""

from __future__ import annotations

import json

import pytest

from loadtests.llm_stats import LlmStats, StreamError, read_sse_stream


def _event(text: str, **extra) -> bytes:
    chunk = {"object": "text_completion", "choices": [{"index": 0, "text": text}], **extra}
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()


def _read(pieces: list[bytes], times: list[float]):
    """(read, clock): each piece arrives at its time (ms); then b"" for ever."""
    pieces, times = list(pieces), list(times)
    now = [0.0]

    def read() -> bytes:
        if not pieces:
            return b""
        now[0] = times.pop(0) / 1000
        return pieces.pop(0)

    return read, lambda: now[0]


def _sample(pieces, times):
    read, clock = _read(pieces, times)
    sample = read_sse_stream(read, 0.0, clock=clock)
    # whole milliseconds again (the clock is in seconds)
    sample.e2e_ms, sample.ttft_ms = round(sample.e2e_ms, 6), round(sample.ttft_ms, 6)
    sample.itl_ms = [round(v, 6) for v in sample.itl_ms]
    return sample


def test_one_piece_per_event():
    body = [_event(f" t{i}") for i in range(4)] + [b"data: [DONE]\n\n"]
    s = _sample(body, [150, 170, 190, 210, 211])
    assert (s.ttft_ms, s.itl_ms, s.output_tokens) == (150, [20, 20, 20], 4)
    assert s.e2e_ms == 211 and s.tpot_ms == pytest.approx(61 / 3)
    assert s.bytes == sum(len(p) for p in body)


def test_events_cut_anywhere_get_the_time_their_line_ends():
    body = b"".join([_event(" é"), _event(" t1"), _event(" t2"), b"data: [DONE]\n\n"])
    first_end = len(_event(" é")) - 2  # the first event's line ends just before its \n\n
    inside_e = body.index("é".encode()) + 1  # between the two bytes of "é"
    cuts = [inside_e, first_end - 1, first_end + 5, len(body) - 4]
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    s = _sample(pieces, [10, 20, 30, 40, 50])
    # line 1 completes in piece 3 (30 ms); lines 2 and 3 in piece 4 (40 ms); [DONE] in 5.
    assert (s.ttft_ms, s.itl_ms, s.e2e_ms, s.output_tokens) == (30, [10, 0], 50, 3)
    assert s.bytes == len(body)


def test_several_events_in_one_piece_arrived_together():
    body = b"".join([_event(" a"), _event(" b"), _event(" c")]) + b"data: [DONE]\n\n"
    s = _sample([body], [5])
    assert (s.ttft_ms, s.itl_ms, s.output_tokens) == (5, [0, 0], 3)


def test_crlf_lines_comments_spacing_and_a_last_line_without_newline():
    body = [
        b": keep-alive comment\r\n\r\n",
        b"event: completion\r\n" + _event(" a").replace(b"\n", b"\r\n"),
        b'data:{"choices": [{"text": " b"}]}\n\n',  # no space after the colon
        b'data:    {"choices": [{"text": " c"}]}   \n\n',  # more whitespace than one space
        b"data: [DONE]",  # the body ends without the blank line
    ]
    s = _sample(body, [1, 2, 3, 4, 5])
    assert (s.ttft_ms, s.itl_ms, s.output_tokens, s.e2e_ms) == (2, [1, 1], 3, 5)


def test_line_separators_inside_json_strings_are_text():
    s = _sample([_event(" a\u2028b\x85c"), b"data: [DONE]\n\n"], [1, 2])
    assert s.output_tokens == 1


def test_usage_chunk_gives_the_token_count():
    body = [
        _event(" a"),
        _event(" bc"),
        b'data: {"choices": [], "usage": {"completion_tokens": 3}}\n\n',
    ]
    s = _sample([*body, b"data: [DONE]\n\n"], [1, 2, 3, 4])
    assert (s.output_tokens, s.itl_ms) == (3, [1])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([b"data: {not json\n\n"], "a chunk is not JSON"),
        ([b'data: {"choices": []} trailing\n\n'], "a chunk is not JSON"),
        ([b'data: {"choices": []}\x0b\n\n'], "a chunk is not JSON"),  # not JSON whitespace
        ([b"data: \xff\xfe\n\n"], "a chunk is not JSON"),
        ([b"data: 5\n\n"], "a chunk is not a JSON object"),
        ([b'data: {"error": {"message": "boom"}}\n\n'], "error event in the stream"),
        ([b'data: {"object": "x"}\n\n'], "a chunk has no choices list"),
        ([b"data: [DONE]\n\n"], "zero tokens in the stream"),
        ([_event(" a")], "stream ended without [DONE]"),
        ([b": nothing\n\n"], "stream ended before the first token"),
        ([], "stream ended before the first token"),
    ],
)
def test_broken_streams_say_why(body, reason):
    with pytest.raises(StreamError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        _sample(body, list(range(1, len(body) + 1)))


def test_goodput_and_histograms():
    stats = LlmStats(slo_ttft_ms=100, slo_tpot_ms=10)
    good = _sample([_event(" a"), _event(" b"), b"data: [DONE]\n\n"], [50, 55, 56])
    slow = _sample([_event(" a"), _event(" b"), b"data: [DONE]\n\n"], [150, 155, 156])
    assert stats.add(good) and not stats.add(slow)
    summary = stats.summary()
    assert summary["counts"]["good"] == 1 and summary["counts"]["requests"] == 2
    assert summary["ttft_ms"]["p50"] == 50 and summary["itl_ms"]["p50"] == 5


def _chat(delta: dict, **extra) -> bytes:
    chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}], **extra}
    return f"data: {json.dumps(chunk)}\n\n".encode()


def _api_sample(pieces, times, api, count_tokens=None):
    from loadtests.apis import APIS

    read, clock = _read(pieces, times)
    s = read_sse_stream(read, 0.0, clock=clock, api=APIS[api], count_tokens=count_tokens)
    s.itl_ms = [round(v, 6) for v in s.itl_ms]
    s.ttft_ms = round(s.ttft_ms, 6)
    return s


def test_a_multi_token_chunk_spreads_its_gap_over_its_tokens():
    # vLLM may send several tokens in one chunk: 3 tokens 30 ms after the first are 3 ITLs
    # of 10 ms, not one of 30 ms; the usage chunk's count is the output tokens, exactly.
    words = lambda text: len(text.split())  # noqa: E731 (a stand-in tokenizer)
    body = [
        _event(" a"),
        _event(" b c d"),
        _event("", finish_reason="length"),  # the finish chunk carries no text: no token
        b'data: {"choices": [], "usage": {"completion_tokens": 4}}\n\n',
        b"data: [DONE]\n\n",
    ]
    s = _api_sample(body, [100, 130, 131, 132, 133], "openai-completions", words)
    assert (s.ttft_ms, s.itl_ms, s.output_tokens, s.token_source) == (
        100,
        [10, 10, 10],
        4,
        "answer",
    )
    # without a tokenizer: one ITL per chunk, the count still the server's
    s = _api_sample(body, [100, 130, 131, 132, 133], "openai-completions")
    assert (s.itl_ms, s.output_tokens) == ([30], 4)


def test_a_chat_streams_role_only_first_chunk_is_not_a_token_and_done_is_optional():
    body = [
        _chat({"role": "assistant", "content": ""}),
        _chat({"content": " hi"}),
        _chat({"content": " there"}),
        _chat({}, usage=None),
    ]
    s = _api_sample(body, [40, 100, 120, 121], "openai-chat")  # ends without [DONE]
    assert (s.ttft_ms, s.itl_ms, s.output_tokens, s.token_source) == (100, [20], 2, "chunks")


def test_a_completions_stream_still_needs_done_and_a_cut_chat_stream_needs_a_token():
    with pytest.raises(StreamError, match=r"without \[DONE\]"):
        _api_sample([_event(" a")], [1], "openai-completions")
    with pytest.raises(StreamError, match="before the first token"):
        _api_sample([_chat({"role": "assistant"})], [1], "openai-chat")
    with pytest.raises(StreamError, match="delta is not an object"):
        _api_sample([b'data: {"choices": [{"delta": "x"}]}\n\n'], [1], "openai-chat")


def test_an_empty_answer_with_the_servers_count_is_an_answer():
    # vLLM's chat stream of a model whose first token is EOS: role chunk, an empty finish
    # chunk, usage 1: one token, its TTFT the finish chunk's time.
    body = [
        _chat({"role": "assistant", "content": ""}),
        _chat({}, usage=None),
        b'data: {"choices": [], "usage": {"completion_tokens": 1}}\n\n',
        b"data: [DONE]\n\n",
    ]
    s = _api_sample(body, [10, 40, 41, 42], "openai-chat")
    assert (s.ttft_ms, s.itl_ms, s.output_tokens, s.token_source) == (40, [], 1, "answer")
    # without the server's count nothing says a token was made: a failure
    with pytest.raises(StreamError, match="zero tokens"):
        _api_sample([body[0], body[1], body[3]], [10, 40, 42], "openai-chat")
    with pytest.raises(StreamError, match="before the first token"):
        _api_sample([body[0], body[1]], [10, 40], "openai-chat")
