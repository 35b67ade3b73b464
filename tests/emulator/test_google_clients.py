"""Google's own clients with their default hosts, by the emulator's environment only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.envfile import read_env_file
from emulator.launcher import EmulatorProcess
from tests.emulator.conftest import port_is_free

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("google_clients_script.py")


def clean_environment() -> dict[str, str]:
    """This process's environment without anything that points Google clients somewhere."""
    drop = {"REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"}
    drop |= {"GOOGLE_APPLICATION_CREDENTIALS"}
    return {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.lower().endswith("_proxy") and not k.startswith("GOOGLE_CLOUD")
    }


def run_with_env(env_file: Path, args: list[str], timeout: float = 500):
    """Run `python args...` with only the env file applied on top of a clean environment."""
    env = {**clean_environment(), **read_env_file(env_file), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_google_clients_unmodified_by_env_file(tmp_path):
    from serving.demo_model import build_demo_model

    model_dir = build_demo_model(tmp_path / "model", size="tiny", seed=0) or tmp_path / "model"
    env_file = tmp_path / "emulator.env"
    emu = EmulatorProcess(tmp_path / "emu", extra_args=["--env-file", str(env_file)])
    with emu:
        env = read_env_file(env_file)
        assert env["HTTPS_PROXY"].startswith("http://127.0.0.1:")
        key = Path(env["REQUESTS_CA_BUNDLE"]).with_name("ca-key.pem")  # see emulator/ca.py
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert env == emu.client_env()
        (tmp_path / "work").mkdir()
        proc = run_with_env(
            env_file,
            [
                str(SCRIPT),
                str(model_dir),
                str(ROOT / "loadtests" / "locustfile.py"),
                str(tmp_path / "work"),
            ],
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
        assert proc.stdout.rstrip().endswith("ALL OK")
        assert emu.processes() == []
        url = emu.url
        log = emu.log_text()
    # the CA's private key is never printed
    assert key.read_text().split("-----")[2].strip()[:40] not in log
    assert not env_file.exists()
    assert port_is_free(url) and port_is_free(env["HTTPS_PROXY"])
