"""Vertex AI clients for our components: the real service, or the embedded emulator.

On Vertex (`api_endpoint` empty) the regional endpoint and default credentials are used.
With `api_endpoint` set (e.g. `http://127.0.0.1:8765`) the clients talk to the emulator with
anonymous credentials, exactly as the official SDK does. The transport is REST in both
cases: Vertex AI serves it, and the embedded Vertex AI reached through its environment
(emulator/envfile.py: an HTTPS proxy) serves REST only, so the same component code runs
on Vertex AI Pipelines and in the emulator's.
"""

from __future__ import annotations


def client_kwargs(location: str, api_endpoint: str = "") -> dict:
    """Keyword arguments for any `google.cloud.aiplatform_v1` service client."""
    if api_endpoint:
        from google.auth.credentials import AnonymousCredentials

        return {
            "client_options": {"api_endpoint": api_endpoint},
            "transport": "rest",
            "credentials": AnonymousCredentials(),
        }
    return {
        "client_options": {"api_endpoint": f"{location}-aiplatform.googleapis.com"},
        "transport": "rest",
    }


def endpoint_client(location: str, api_endpoint: str = ""):
    """An `EndpointServiceClient` for the location (or the emulator)."""
    from google.cloud import aiplatform_v1

    return aiplatform_v1.EndpointServiceClient(**client_kwargs(location, api_endpoint))


def model_client(location: str, api_endpoint: str = ""):
    """A `ModelServiceClient` for the location (or the emulator)."""
    from google.cloud import aiplatform_v1

    return aiplatform_v1.ModelServiceClient(**client_kwargs(location, api_endpoint))


def location_path(project: str, location: str) -> str:
    return f"projects/{project}/locations/{location}"


def resource_uri(resource_name: str, location: str, api_endpoint: str = "") -> str:
    """The artifact URI GCPC gives a Vertex resource (an https URL to its REST path)."""
    base = (
        api_endpoint.rstrip("/")
        if api_endpoint
        else f"https://{location}-aiplatform.googleapis.com"
    )
    if "://" not in base:
        base = f"http://{base}"
    return f"{base}/v1/{resource_name}"
