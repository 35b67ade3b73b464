"""Point the official `google-cloud-aiplatform` SDK at an emulator."""

from __future__ import annotations


def sdk_endpoint(url: str) -> str:
    """The `api_endpoint` to give the SDK: keep the `http://` scheme.

    The REST transport takes the scheme from `api_endpoint` and defaults to https, so
    `"127.0.0.1:PORT"` would talk TLS to a plain-HTTP server; `"http://127.0.0.1:PORT"`
    makes it use plain HTTP.
    """
    url = url.rstrip("/")
    return url if url.startswith(("http://", "https://")) else f"http://{url}"


def init_sdk(url: str, project: str = "deploytest-local", location: str = "us-central1") -> None:
    """`aiplatform.init` for the emulator at `url`: REST transport, anonymous credentials."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    aiplatform.init(
        project=project,
        location=location,
        api_endpoint=sdk_endpoint(url),
        api_transport="rest",
        credentials=AnonymousCredentials(),
    )


def error_status(exc: BaseException) -> str | None:
    """The canonical status name (e.g. 'FAILED_PRECONDITION') of an SDK REST error.

    Over REST, `google.api_core` picks the exception class from the HTTP code alone, so a
    FAILED_PRECONDITION answer arrives as `BadRequest`; the body still names the status.
    Returns None when it cannot be read.
    """
    response = getattr(exc, "response", None)
    try:
        return response.json()["error"]["status"]
    except Exception:
        return None


class EmulatorAdmin:
    """The emulator's admin API (not Vertex AI) for a running emulator at `url`."""

    def __init__(self, url: str):
        self.url = sdk_endpoint(url)

    def _call(self, path: str, body: dict | None = None) -> dict:
        import json
        import urllib.request

        req = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method="GET" if body is None else "PUT",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)

    def set_faults(self, faults: dict) -> dict:
        """Change faults at runtime (partial update); returns the active faults."""
        return self._call("/deploytest/v1/faults", faults)

    def get_faults(self) -> dict:
        """The active faults."""
        return self._call("/deploytest/v1/faults")

    def clear_faults(self) -> dict:
        """Turn every fault off (the emulator's defaults); returns the active faults."""
        from dataclasses import asdict

        from emulator.faults import Faults

        return self.set_faults(asdict(Faults()))

    def processes(self) -> list[dict]:
        """Model-server processes the emulator runs now (pid, port, endpoint, deployedModelId)."""
        return self._call("/deploytest/v1/processes")["processes"]

    def client_env(self) -> dict[str, str]:
        """The environment that points Google's clients at this emulator (emulator/envfile.py)."""
        return self._call("/deploytest/v1/client-env")["env"]

    def pipeline_log(self, job_id: str, offset: int = 0) -> bytes:
        """A pipeline job's task log from byte `offset` on (b"" if there is none)."""
        import urllib.error
        import urllib.request

        url = f"{self.url}/deploytest/v1/pipeline-logs/{job_id}?offset={offset}"
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                return resp.read()
        except urllib.error.HTTPError:
            return b""

    def health(self) -> dict:
        """Liveness, and how many deployed models are still being recovered after a start."""
        return self._call("/deploytest/v1/healthz")
