"""Which serving API the load test speaks to a model (loadtests/apis.py), decided before
anything is deployed: `auto` reads the model's `containerSpec` from the Model Registry and
applies the one table of rules (`loadtests.apis.AUTO_RULES`)."""

from __future__ import annotations

from typing import Any

from loadtests.apis import AUTO, auto_api, check_api


def container_spec(model: str, location: str, api_endpoint: str = "") -> dict[str, Any]:
    """The model's `containerSpec` as REST JSON (camelCase), from the Model Registry."""
    from google.cloud import aiplatform_v1

    from components.vertex_clients import model_client

    found = model_client(location, api_endpoint).get_model(name=model)
    return aiplatform_v1.Model.to_dict(found, use_integers_for_enums=False).get(
        "container_spec", {}
    )


def resolve(api: str, stream: bool, spec_of, workload: str = "") -> tuple[str, str]:
    """(api, why): `api` itself when given (checked), else the rule's pick for the
    container spec `spec_of()` returns; a workload the API cannot send (chat sessions need a
    chat API) is refused too. ValueError says why a run cannot go on."""
    if api != AUTO:
        name, why = api, "given"
    else:
        name, why = auto_api(spec_of(), stream)
        why = f"auto: {why}"
    check_api(name, stream)
    if workload:
        from loadtests.workload import check_api as check_workload_api
        from loadtests.workload import parse_workload_json

        check_workload_api(parse_workload_json(workload), name)
    return name, why
