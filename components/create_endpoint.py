"""KFP component (local op set): create a labelled endpoint through the Vertex AI SDK.

Same inputs and outputs as GCPC's `EndpointCreateOp`, so both op sets give one graph.
"""

from google_cloud_pipeline_components.types.artifact_types import VertexEndpoint
from kfp import dsl
from kfp.dsl import Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def create_endpoint(
    project: str,
    location: str,
    display_name: str,
    labels: dict,
    api_endpoint: str,
    endpoint: Output[VertexEndpoint],
):
    """Create an endpoint and wait for the operation.

    Args:
        project: the project (or the emulated one).
        location: the region.
        display_name: the endpoint's display name.
        labels: labels for the endpoint (run label, managed, cost labels).
        api_endpoint: the emulator's URL; empty means the real regional Vertex AI.
        endpoint: the created endpoint (`metadata.resourceName`, URI as GCPC writes it).
    """
    from google.cloud import aiplatform_v1

    from components.vertex_clients import endpoint_client, location_path, resource_uri

    client = endpoint_client(location, api_endpoint)
    print(f"creating endpoint {display_name!r} with labels {labels}", flush=True)
    operation = client.create_endpoint(
        parent=location_path(project, location),
        endpoint=aiplatform_v1.Endpoint(display_name=display_name, labels=labels),
    )
    created = operation.result(timeout=300)
    endpoint.metadata["resourceName"] = created.name
    endpoint.uri = resource_uri(created.name, location, api_endpoint)
    print(f"created {created.name}", flush=True)
