"""Settings (flags > env > defaults) and AIP_STORAGE_URI resolution, without network."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from serving.config import ConfigError, Settings, add_server_arguments, settings_from
from serving.storage import (
    StorageError,
    blob_to_path,
    download_gcs,
    parse_gcs_uri,
    resolve_model_dir,
)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_follow_the_vertex_contract():
    s = settings_from(parse(), {"AIP_STORAGE_URI": "gs://b/m"})
    assert (s.port, s.host, s.health_route, s.predict_route) == (
        8080,
        "0.0.0.0",
        "/health",
        "/predict",
    )
    assert (s.max_batch_size, s.max_batch_wait_ms, s.max_new_tokens_cap) == (8, 5.0, 64)
    assert s.model_uri == "gs://b/m"


def test_env_configures_everything_a_deployer_can_set():
    env = {
        "AIP_STORAGE_URI": "/models/x",
        "AIP_HTTP_PORT": "7000",
        "AIP_HEALTH_ROUTE": "/v1/endpoints/1/deployedModels/2",
        "AIP_PREDICT_ROUTE": "/v1/endpoints/1/deployedModels/2:predict",
        "DEPLOYTEST_MAX_BATCH_SIZE": "1",
        "DEPLOYTEST_MAX_BATCH_WAIT_MS": "2.5",
        "DEPLOYTEST_MAX_NEW_TOKENS_CAP": "32",
        "DEPLOYTEST_SERVING_LOAD_DELAY_S": "0.5",
    }
    s = settings_from(parse(), env)
    assert s.port == 7000 and s.predict_route.endswith(":predict")
    assert (s.max_batch_size, s.max_batch_wait_ms, s.max_new_tokens_cap) == (1, 2.5, 32)
    assert s.load_delay_s == 0.5


def test_flags_override_env():
    env = {"AIP_STORAGE_URI": "/a", "AIP_HTTP_PORT": "7000", "DEPLOYTEST_MAX_BATCH_SIZE": "4"}
    s = settings_from(
        parse("--model-dir", "/b", "--port", "7001", "--max-batch-size", "16", "--host", "::1"),
        env,
    )
    assert (s.model_uri, s.port, s.max_batch_size, s.host) == ("/b", 7001, 16, "::1")


@pytest.mark.parametrize(
    "argv, env, message",
    [
        ((), {}, "no model"),
        (("--model-dir", "/m", "--max-batch-size", "0"), {}, "max batch size"),
        (("--model-dir", "/m", "--port", "70000"), {}, "port"),
        (("--model-dir", "/m"), {"AIP_HTTP_PORT": "eighty"}, "AIP_HTTP_PORT"),
        (("--model-dir", "/m"), {"AIP_HEALTH_ROUTE": "health"}, "start with"),
        (("--model-dir", "/m"), {"AIP_PREDICT_ROUTE": "/stats"}, "must differ"),
        (("--model-dir", "/m", "--max-batch-wait-ms", "-1"), {}, "wait"),
        (("--model-dir", "/m"), {"DEPLOYTEST_STEP_DELAY_MS": "-1"}, "STEP_DELAY"),
        (("--model-dir", "/m"), {"DEPLOYTEST_STEP_DELAY_MS": "nan"}, "STEP_DELAY"),
        (("--model-dir", "/m"), {"DEPLOYTEST_STEP_DELAY_MS": "slow"}, "STEP_DELAY"),
    ],
)
def test_bad_settings_name_the_problem(argv, env, message):
    with pytest.raises(ConfigError, match=message):
        settings_from(parse(*argv), env)


def test_a_step_delay_pauses_every_generation_step(demo_model_dir):
    """The emulator's machine profiles slow a smaller machine down with it: a batch of new
    tokens takes at least one delay per step (a lower bound: sleeping is never shorter)."""
    import time

    from serving.generation import Generator, GenParams

    assert (
        settings_from(parse("--model-dir", "/m"), {"DEPLOYTEST_STEP_DELAY_MS": "40"}).step_delay_ms
        == 40
    )
    slow = Generator(demo_model_dir, step_delay_s=0.04)
    params = GenParams(max_new_tokens=5, ignore_eos=True)
    started = time.monotonic()
    rows = slow.generate(["a", "b"], params)
    assert time.monotonic() - started >= 5 * 0.04
    assert [r.output_tokens for r in rows] == [5, 5]  # the answers themselves are unchanged
    assert [r.generated_text for r in rows] == [
        r.generated_text for r in Generator(demo_model_dir).generate(["a", "b"], params)
    ]


def test_settings_validate_when_built_directly():
    with pytest.raises(ConfigError):
        Settings(model_uri="/m", max_new_tokens_cap=0)


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("gs://bucket/models/gpt2", ("bucket", "models/gpt2/")),
        ("gs://bucket/models/gpt2/", ("bucket", "models/gpt2/")),
        ("gs://bucket", ("bucket", "")),
        ("gs://bucket/", ("bucket", "")),
    ],
)
def test_parse_gcs_uri(uri, expected):
    assert parse_gcs_uri(uri) == expected


@pytest.mark.parametrize("uri", ["gs://", "gs:///x", "s3://b/x", "/local"])
def test_parse_gcs_uri_refuses(uri):
    with pytest.raises(StorageError):
        parse_gcs_uri(uri)


def test_blob_to_path_maps_under_the_prefix(tmp_path):
    assert blob_to_path("m/config.json", "m/", tmp_path) == tmp_path / "config.json"
    assert blob_to_path("m/sub/a.bin", "m/", tmp_path) == tmp_path / "sub" / "a.bin"
    assert blob_to_path("m/", "m/", tmp_path) is None  # folder placeholder
    assert blob_to_path("m/sub/", "m/", tmp_path) is None
    assert blob_to_path("other/x", "m/", tmp_path) is None
    with pytest.raises(StorageError):
        blob_to_path("m/../escape", "m/", tmp_path)
    with pytest.raises(StorageError):
        blob_to_path("m//x", "m/", tmp_path)


class _Blob:
    def __init__(self, name: str, data: bytes):
        self.name, self.data = name, data

    def download_to_filename(self, filename: str) -> None:
        Path(filename).write_bytes(self.data)


class _Client:
    """Stands in for google.cloud.storage.Client: no GCS here, only the mapping is tested."""

    def __init__(self, blobs: dict[str, bytes]):
        self.blobs = blobs
        self.calls: list[tuple[str, str]] = []

    def list_blobs(self, bucket: str, prefix: str):
        self.calls.append((bucket, prefix))
        return [_Blob(n, d) for n, d in self.blobs.items() if n.startswith(prefix)]


def test_download_gcs_copies_the_prefix(tmp_path):
    client = _Client({"m/": b"", "m/config.json": b"{}", "m/tok/vocab.json": b"v", "mx/no": b""})
    out = download_gcs("gs://bkt/m", tmp_path / "dl", client=client)
    assert client.calls == [("bkt", "m/")]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "config.json",
        "tok/vocab.json",
    ]


def test_download_gcs_refuses_an_empty_prefix(tmp_path):
    with pytest.raises(StorageError, match="no files"):
        download_gcs("gs://bkt/missing", tmp_path, client=_Client({}))


def test_resolve_local_paths(tmp_path):
    assert resolve_model_dir(str(tmp_path), tmp_path / "scratch") == tmp_path
    assert resolve_model_dir(f"file://{tmp_path}", tmp_path / "scratch") == tmp_path
    with pytest.raises(StorageError, match="does not exist"):
        resolve_model_dir(str(tmp_path / "nope"), tmp_path / "scratch")
    with pytest.raises(StorageError, match="unsupported"):
        resolve_model_dir("s3://b/m", tmp_path / "scratch")
