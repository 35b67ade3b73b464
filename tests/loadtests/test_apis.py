"""loadtests/apis.py: each adapter's body and answer check, and the rules of --api auto."""

from __future__ import annotations

import pytest

from loadtests.apis import APIS, AnswerError, auto_api, check_api, get_api

RESOURCE = "projects/p/locations/us-central1/endpoints/7"


@pytest.mark.parametrize(
    ("api", "answer", "expected"),
    [
        ("deploytest", {"predictions": [{"generated_text": "x", "output_tokens": 3}]}, ("x", 3)),
        ("openai-completions", {"choices": [{"text": "x"}], "usage": {"completion_tokens": 2}},
         ("x", 2)),
        ("openai-chat", {"choices": [{"message": {"content": "x"}}]}, ("x", None)),
        ("vertex-vllm", {"predictions": ["x", "y"]}, ("xy", None)),
        ("tgi", {"predictions": ["x"]}, ("x", None)),
        ("hf-inference-toolkit", {"predictions": [[{"generated_text": "x"}]]}, ("x", None)),
    ],
)  # fmt: skip
def test_each_adapter_reads_its_own_answer(api, answer, expected):
    assert APIS[api].answer(answer) == expected


SHAPES = [
    {"predictions": [{"generated_text": "x", "output_tokens": 1}]},
    {"choices": [{"text": "x"}]},
    {"choices": [{"message": {"content": "x"}}]},
    {"predictions": ["x"]},
    {"predictions": [[{"generated_text": "x"}]]},
    [],
]
# Which of SHAPES each API takes: its own only (Model Garden vLLM and TGI share theirs).
OWN = {
    "deploytest": {0},
    "openai-completions": {1},
    "openai-chat": {2},
    "vertex-vllm": {3},
    "tgi": {3},
    "hf-inference-toolkit": {4},
}


@pytest.mark.parametrize("api", list(APIS))
def test_each_adapter_refuses_another_apis_answer_with_a_short_reason(api):
    taken = set()
    for i, answer in enumerate(SHAPES):
        try:
            APIS[api].answer(answer)
            taken.add(i)
        except AnswerError as exc:
            assert len(str(exc)) < 60  # a Locust failure row's name, one per kind
    assert taken == OWN[api]


def test_bodies_and_vertex_paths():
    assert APIS["openai-completions"].body("hi", 5, True) == {
        "prompt": "hi",
        "max_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert APIS["tgi"].body("hi", 5, False) == {
        "instances": [{"inputs": "hi", "parameters": {"max_new_tokens": 5}}]
    }
    assert APIS["deploytest"].vertex_path(RESOURCE, True) == f"/v1/{RESOURCE}:streamRawPredict"
    assert APIS["openai-completions"].vertex_path(RESOURCE, False) == f"/v1/{RESOURCE}:rawPredict"
    chat = f"/v1beta1/{RESOURCE}/chat/completions"
    assert APIS["openai-chat"].vertex_path(RESOURCE, True) == chat
    with pytest.raises(ValueError, match="cannot stream"):
        APIS["tgi"].vertex_path(RESOURCE, True)


@pytest.mark.parametrize(
    ("spec", "stream", "api"),
    [
        ({"command": ["python", "-m", "serving"], "predictRoute": "/predict"}, True, "deploytest"),
        ({"imageUri": "us-docker.pkg.dev/vertex-ai/vertex-vision-model-garden-dockers/"
                      "pytorch-vllm-serve:20250101", "predictRoute": "/generate"}, False,
         "vertex-vllm"),
        ({"imageUri": "us-docker.pkg.dev/vertex-ai/vertex-vision-model-garden-dockers/"
                      "pytorch-vllm-serve:20250101"}, True, "openai-chat"),
        ({"imageUri": "us-docker.pkg.dev/deeplearning-platform-release/gcr.io/"
                      "huggingface-text-generation-inference-cu124.2-4.ubuntu2204.py311"}, False,
         "tgi"),
        ({"image_uri": "us-docker.pkg.dev/deeplearning-platform-release/gcr.io/"
                       "huggingface-pytorch-inference-cu121.2-2.transformers.4-44"}, False,
         "hf-inference-toolkit"),
        ({"imageUri": "vllm/vllm-openai:v0.11.0", "predictRoute": "/v1/completions"}, True,
         "openai-completions"),
        ({"predict_route": "/v1/chat/completions/"}, False, "openai-chat"),
    ],
)  # fmt: skip
def test_auto_rules(spec, stream, api):
    assert auto_api(spec, stream)[0] == api


def test_auto_refuses_what_no_rule_knows_and_what_cannot_stream():
    with pytest.raises(ValueError, match="no rule knows the container"):
        auto_api({"imageUri": "gcr.io/x/mystery", "predictRoute": "/infer"}, False)
    hf = {"imageUri": "x/huggingface-pytorch-inference-cu121"}
    with pytest.raises(ValueError, match="cannot stream: drop --stream"):
        auto_api(hf, True)


def test_check_api():
    check_api("auto", True)
    check_api("openai-chat", True)
    with pytest.raises(ValueError, match="cannot stream"):
        check_api("hf-inference-toolkit", True)
    with pytest.raises(ValueError, match="one of deploytest, openai-completions"):
        get_api("vllm")


def test_greedy_bodies_ask_each_container_for_greedy_decoding():
    from loadtests.apis import APIS

    bodies = {name: api.greedy_body("p", 5) for name, api in APIS.items()}
    assert bodies["deploytest"]["parameters"] == {"max_new_tokens": 5, "do_sample": False}
    assert bodies["openai-completions"]["temperature"] == 0.0
    assert bodies["openai-chat"]["temperature"] == 0.0 and "stream" not in bodies["openai-chat"]
    assert bodies["vertex-vllm"]["instances"][0]["temperature"] == 0.0
    assert bodies["hf-inference-toolkit"]["parameters"]["do_sample"] is False
    # TGI's Vertex route forces sampling: seeded, and marked as not deterministic
    assert bodies["tgi"]["instances"][0]["parameters"]["seed"] == 0
    assert [n for n, a in APIS.items() if not a.deterministic] == ["tgi"]
