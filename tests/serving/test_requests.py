"""Predict body validation: both request shapes, parameter types, ranges and caps."""

from __future__ import annotations

import pytest

from serving.generation import (
    DEFAULT_MAX_NEW_TOKENS,
    MAX_INSTANCES,
    GenParams,
    RequestError,
    parse_predict_body,
)

CAP = 64


def test_text_shape_with_shared_parameters():
    items = parse_predict_body(
        {"instances": [{"text": "a"}, {"text": "b"}], "parameters": {"max_new_tokens": 5}}, CAP
    )
    assert items == [("a", GenParams(max_new_tokens=5)), ("b", GenParams(max_new_tokens=5))]


def test_vllm_shape_with_per_instance_settings():
    items = parse_predict_body(
        {
            "instances": [
                {"prompt": "a", "max_tokens": 3, "temperature": 0.5, "raw_response": True},
                {"prompt": "b"},
            ],
            "parameters": {"max_new_tokens": 7},
        },
        CAP,
    )
    # Without do_sample, temperature is irrelevant and normalised away.
    assert items == [("a", GenParams(max_new_tokens=3)), ("b", GenParams(max_new_tokens=7))]


def test_defaults_are_greedy():
    [(_, params)] = parse_predict_body({"instances": [{"text": "a"}]}, CAP)
    assert params == GenParams(max_new_tokens=DEFAULT_MAX_NEW_TOKENS, do_sample=False)
    assert params.batch_key() is not None


def test_sampling_parameters_and_batch_keys():
    body = {
        "instances": [{"text": "a"}],
        "parameters": {"do_sample": True, "temperature": 2, "top_p": 0.9, "seed": 7},
    }
    [(_, seeded)] = parse_predict_body(body, CAP)
    assert seeded == GenParams(DEFAULT_MAX_NEW_TOKENS, True, 2.0, 0.9, 7)
    assert seeded.batch_key() is None  # a seeded sample runs alone
    del body["parameters"]["seed"]
    [(_, unseeded)] = parse_predict_body(body, CAP)
    assert unseeded.batch_key() == (DEFAULT_MAX_NEW_TOKENS, True, 2.0, 0.9, False)


def test_max_new_tokens_is_capped_not_refused():
    [(_, params)] = parse_predict_body(
        {"instances": [{"text": "a"}], "parameters": {"max_tokens": 10_000}}, CAP
    )
    assert params.max_new_tokens == CAP


@pytest.mark.parametrize(
    "body, message",
    [
        ([], "JSON object"),
        ("text", "JSON object"),
        ({}, "non-empty list"),
        ({"instances": []}, "non-empty list"),
        ({"instances": {"text": "a"}}, "non-empty list"),
        ({"instances": [{"text": "a"}] * (MAX_INSTANCES + 1)}, "at most"),
        ({"instances": ["a"]}, "must be an object"),
        ({"instances": [{}]}, "exactly one"),
        ({"instances": [{"text": "a", "prompt": "b"}]}, "exactly one"),
        ({"instances": [{"text": ""}]}, "non-empty string"),
        ({"instances": [{"text": 3}]}, "non-empty string"),
        ({"instances": [{"text": "a"}], "extra": 1}, "unknown top-level"),
        ({"instances": [{"text": "a"}], "parameters": []}, "JSON object"),
        ({"instances": [{"text": "a"}], "parameters": {"top_k": 5}}, "unknown parameters"),
        ({"instances": [{"text": "a", "foo": 1}]}, "unknown parameters"),
        ({"instances": [{"text": "a"}], "parameters": {"max_new_tokens": 0}}, ">= 1"),
        ({"instances": [{"text": "a"}], "parameters": {"max_new_tokens": 2.5}}, "integer"),
        ({"instances": [{"text": "a"}], "parameters": {"max_new_tokens": float("inf")}}, "integer"),
        ({"instances": [{"text": "a"}], "parameters": {"max_new_tokens": "4"}}, "integer"),
        ({"instances": [{"text": "a"}], "parameters": {"max_new_tokens": True}}, "integer"),
        (
            {"instances": [{"text": "a"}], "parameters": {"max_new_tokens": 2, "max_tokens": 2}},
            "not both",
        ),
        ({"instances": [{"text": "a"}], "parameters": {"temperature": -0.5}}, "> 0"),
        ({"instances": [{"text": "a"}], "parameters": {"temperature": 2.5}}, "<= 2"),
        ({"instances": [{"text": "a"}], "parameters": {"temperature": "hot"}}, "number"),
        ({"instances": [{"text": "a"}], "parameters": {"temperature": float("nan")}}, "> 0"),
        ({"instances": [{"text": "a"}], "parameters": {"top_p": 0}}, "> 0"),
        ({"instances": [{"text": "a"}], "parameters": {"top_p": 1.1}}, "<= 1"),
        ({"instances": [{"text": "a"}], "parameters": {"do_sample": "yes"}}, "true or false"),
        ({"instances": [{"text": "a"}], "parameters": {"seed": -1}}, "seed"),
        ({"instances": [{"text": "a"}], "parameters": {"seed": 1.5}}, "seed"),
        ({"instances": [{"prompt": "a", "max_tokens": -3}]}, r"instances\[0\]"),
    ],
)
def test_bad_bodies_are_request_errors(body, message):
    with pytest.raises(RequestError, match=message):
        parse_predict_body(body, CAP)


def test_whole_number_floats_count_as_integers():
    # The Vertex SDK sends parameters as protobuf Values: 8 arrives as 8.0.
    [(_, params)] = parse_predict_body(
        {"instances": [{"text": "a"}], "parameters": {"max_new_tokens": 8.0, "seed": 3.0}}, CAP
    )
    assert params.max_new_tokens == 8


def test_temperature_zero_means_greedy_as_in_vllm():
    body = {"instances": [{"prompt": "a", "temperature": 0}], "parameters": {"do_sample": True}}
    [(_, params)] = parse_predict_body(body, CAP)
    assert params.do_sample is False
    assert params == GenParams(max_new_tokens=DEFAULT_MAX_NEW_TOKENS)


def test_ignore_eos_generates_exactly_max_new_tokens(demo_model_dir, tmp_path):
    """A model whose every step's likeliest token is EOS: greedy stops at once, unless the
    request says ignore_eos (vLLM's parameter; load tests with fixed output lengths)."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    from serving.generation import Generator, parse_predict_body

    eager = tmp_path / "eager-eos"
    shutil.copytree(demo_model_dir, eager)
    model = AutoModelForCausalLM.from_pretrained(eager, local_files_only=True)
    with torch.no_grad():  # the last hidden state is a constant e0; only EOS scores on e0
        eos = model.config.eos_token_id
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.zero_()
        model.transformer.ln_f.bias[0] = 10.0
        model.transformer.wte.weight[:, 0] = 0.0  # tied to the output layer
        model.transformer.wte.weight[eos, 0] = 1.0
    model.save_pretrained(eager)
    generator = Generator(eager)
    body = {"instances": [{"text": "hello world"}], "parameters": {"max_new_tokens": 12}}
    ((prompt, params),) = parse_predict_body(body, cap=64)
    assert generator.generate([prompt], params)[0].output_tokens == 1
    body["parameters"]["ignore_eos"] = True
    ((prompt, params),) = parse_predict_body(body, cap=64)
    assert (
        params.ignore_eos
        and params.batch_key()
        != parse_predict_body(
            {"instances": [{"text": "x"}], "parameters": {"max_new_tokens": 12}}, 64
        )[0][1].batch_key()
    )
    assert generator.generate([prompt], params)[0].output_tokens == 12
    with pytest.raises(RequestError, match="ignore_eos must be true or false"):
        parse_predict_body({"instances": [{"text": "x"}], "parameters": {"ignore_eos": 1}}, 64)
