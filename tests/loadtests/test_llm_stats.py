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
