"""The environment that points Google's clients at a running emulator, and the env file.

`client_environment` is the one description: `deploytest emulator --env-file F` writes it
as shell `export` lines, `EmulatorProcess.client_env()` returns it for subprocesses, and
the emulator gives it to the model servers it starts (so a `gs://` model is downloaded
through it). The clients' code and default hosts stay as they are:

* `HTTPS_PROXY`/`https_proxy` (requests, so google-auth, google-cloud-storage, the
  aiplatform SDK's REST transport, GCPC's launchers, kfp) and gRPC (the SDK's default
  transport, Resource Manager) -> the emulator's proxy;
  `HTTP_PROXY` too, so a plain-http URL meets the proxy's 502 instead of the network;
* `NO_PROXY` 127.0.0.1,localhost: loopback calls (model servers, `api_endpoint=http://...`)
  stay direct;
* `REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`, `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH` (gRPC clients:
  the SDK's default transport, and Resource Manager's that the SDK's pipeline submit
  uses): the emulator's CA certificate (only it);
* `GOOGLE_APPLICATION_CREDENTIALS`: credentials whose token refresh the emulator answers;
* `GOOGLE_CLOUD_PROJECT`: the project for clients that read it (google-cloud-storage);
* `DEPLOYTEST_EMULATOR_URL`: the emulator's plain-HTTP URL (its admin API).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path


def client_environment(
    *, proxy_url: str, ca_cert: Path, credentials: Path, project: str, emulator_url: str
) -> dict[str, str]:
    """The variables (see the module docstring)."""
    no_proxy = "127.0.0.1,localhost,::1"
    return {
        "HTTPS_PROXY": proxy_url,
        "https_proxy": proxy_url,
        "HTTP_PROXY": proxy_url,
        "http_proxy": proxy_url,
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
        "REQUESTS_CA_BUNDLE": str(ca_cert),
        "SSL_CERT_FILE": str(ca_cert),
        "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(ca_cert),
        "GOOGLE_APPLICATION_CREDENTIALS": str(credentials),
        "GOOGLE_CLOUD_PROJECT": project,
        "DEPLOYTEST_EMULATOR_URL": emulator_url,
    }


def render(env: dict[str, str]) -> str:
    """Shell `export` lines for `env`, quoted."""
    lines = ["# deploytest emulator: source this file to point Google's clients at it"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    return "\n".join(lines) + "\n"


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """Write the export lines to `path` atomically (0600: it names the credentials)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(render(env))
    tmp.replace(path)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a file written by `write_env_file` back into a dict (for tests and tools)."""
    env = {}
    for line in Path(path).read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env
