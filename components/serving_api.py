"""KFP component: the serving API of the model under test, decided before the paid deploy."""

from kfp import dsl

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def serving_api(
    model: str,
    api: str,
    stream: bool,
    location: str,
    api_endpoint: str,
    workload: str = "",
) -> str:
    """Pick the API the load test speaks (loadtests/apis.py), or fail with the reason.

    Runs before the endpoint is created, so a container no rule knows (with `api` auto) or
    an API that cannot stream (with `stream`) costs no deploy.

    Args:
        model: the model's resource name, projects/P/locations/L/models/M.
        api: deploytest, openai-completions, openai-chat, vertex-vllm, tgi,
            hf-inference-toolkit, or auto (from the model's containerSpec).
        stream: whether the load test streams tokens.
        location: the region, for the Vertex AI host.
        api_endpoint: the emulator's URL; empty means Vertex AI itself.
        workload: the run's workload (JSON, loadtests/workload.py): chat sessions need a
            chat API.

    Returns:
        The API's name.
    """
    from components.runtime.serving_api import container_spec, resolve

    name, why = resolve(
        api, stream, lambda: container_spec(model, location, api_endpoint), workload
    )
    print(f"serving API: {name} ({why})")
    return name
