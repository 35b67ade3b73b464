"""The offline demo model: real GPT-2 classes, loaded through from_pretrained, deterministic."""

import hashlib
import json
import subprocess
import sys

import pytest

from serving.demo_model import SIZES, build_demo_model


def _digest(path):
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_tiny_model_is_deterministic_and_loads_through_from_pretrained(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2LMHeadModel

    a = build_demo_model(tmp_path / "a", "tiny", seed=3)
    b = build_demo_model(tmp_path / "b", "tiny", seed=3)
    c = build_demo_model(tmp_path / "c", "tiny", seed=4)
    assert _digest(a) == _digest(b) != _digest(c)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()

    model = AutoModelForCausalLM.from_pretrained(a)
    tokenizer = AutoTokenizer.from_pretrained(a)
    assert isinstance(model, GPT2LMHeadModel)
    assert model.config.n_layer == SIZES["tiny"].n_layer
    ids = tokenizer(["the model answers", "a"], return_tensors="pt", padding=True)
    assert ids["input_ids"].shape[1] > 1  # the trained BPE really tokenizes
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape == (2, ids["input_ids"].shape[1] + 5)
    assert tokenizer.decode(tokenizer("hello world").input_ids) == "hello world"
    info = json.loads((a / "deploytest_demo.json").read_text())
    assert info["size"] == "tiny" and info["parameters"] == model.num_parameters()


def test_gpt2_size_is_the_124m_architecture():
    spec = SIZES["gpt2"]
    assert (spec.n_layer, spec.n_head, spec.n_embd, spec.n_positions) == (12, 12, 768, 1024)


def test_cli_builds_the_model_and_refuses_unknown_sizes(tmp_path):
    run = [sys.executable, "-m", "deploytest", "demo-model"]
    ok = subprocess.run([*run, "-o", str(tmp_path / "m")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "m" / "config.json").is_file()
    bad = subprocess.run([*run, "--size", "huge", "-o", str(tmp_path / "x")], capture_output=True)
    assert bad.returncode == 2 and not (tmp_path / "x").exists()
    with pytest.raises(ValueError):
        build_demo_model(tmp_path / "y", "huge")
