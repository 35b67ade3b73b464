"""The expectations file: every bad line refused naming it, every check judged."""

from __future__ import annotations

from pathlib import Path

import pytest

from correctness.expectations import ExpectationError, parse_expectations

EXAMPLES = Path(__file__).resolve().parents[2] / "correctness" / "examples"


@pytest.mark.parametrize(
    "line, message",
    [
        ("not json", "f line 2: not JSON"),
        ('{"prompt": "p", "contains": "x", "size": 3}', "unknown key(s) ['size']"),
        ('{"prompt": "p"}', "no check"),
        ('{"prompt": "", "contains": "x"}', "prompt must be a non-empty string"),
        ('{"prompt": "p", "regex": "("}', "bad regex"),
        ('{"prompt": "p", "json_schema": {"type": "nothing"}}', "bad json_schema"),
        ('{"prompt": "p", "json_schema": []}', "json_schema must be a JSON object"),
        ('{"prompt": "p", "max_output_tokens": -1}', "max_output_tokens must be an integer"),
        ('{"prompt": "p", "contains": []}', "contains must be a string or a list"),
        ('["p"]', "must be a JSON object"),
    ],
)
def test_a_bad_line_is_refused_naming_the_line(line, message):
    text = '{"prompt": "fine", "contains": "a"}\n' + line + "\n"
    with pytest.raises(ExpectationError) as err:
        parse_expectations(text, "f")
    assert "f line 2" in str(err.value) and message in str(err.value)


def test_comments_and_blank_lines_are_skipped_and_an_empty_file_refused():
    assert [e.line for e in parse_expectations('# c\n\n{"prompt": "p", "equals": "x"}\n', "f")] == [
        3
    ]
    with pytest.raises(ExpectationError, match="holds no expectation"):
        parse_expectations("# only a comment\n", "f")


def test_each_check_passes_and_fails():
    (exp,) = parse_expectations(
        '{"prompt": "p", "contains": ["ab", "cd"], "not_contains": "zz", "regex": "^a", '
        '"max_output_tokens": 5, "min_output_tokens": 2}',
        "f",
    )
    assert exp.judge("abcd", 3) == []
    failed = exp.judge("xcd zz", 9)
    assert failed == [
        "contains 'ab'",
        "not_contains 'zz'",
        "regex '^a'",
        "max_output_tokens 5 (got 9)",
    ]
    assert exp.judge("abcd", None) == [
        "max_output_tokens 5 (the answer's token count is unknown)",
        "min_output_tokens 2 (the answer's token count is unknown)",
    ]
    (schema,) = parse_expectations(
        '{"prompt": "p", "json_schema": {"type": "object", "required": ["a"]}}', "f"
    )
    assert schema.judge(' {"a": 1} ', 4) == []
    assert schema.judge("{}", 4) == ["json_schema ('a' is a required property)"]
    assert schema.judge("nope", 4) == ["json_schema (the answer is not JSON)"]
    (equals,) = parse_expectations('{"prompt": "p", "equals": "Paris"}', "f")
    assert equals.judge(" Paris\n", 1) == [] and equals.judge("Lyon", 1) == ["equals 'Paris'"]


def test_the_shipped_examples_parse():
    for path in EXAMPLES.glob("*.jsonl"):
        assert parse_expectations(path.read_text(), str(path))
