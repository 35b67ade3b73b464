"""KFP component (local op set): deploy a model to an endpoint through the Vertex AI SDK.

Same inputs as GCPC's `ModelDeployOp` (dedicated resources), so both op sets give one graph.
"""

from google_cloud_pipeline_components.types.artifact_types import VertexEndpoint, VertexModel
from kfp import dsl
from kfp.dsl import Input

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def deploy_model(
    model: Input[VertexModel],
    endpoint: Input[VertexEndpoint],
    api_endpoint: str,
    deployed_model_display_name: str,
    dedicated_resources_machine_type: str,
    dedicated_resources_accelerator_type: str,
    dedicated_resources_accelerator_count: int,
    dedicated_resources_min_replica_count: int,
    dedicated_resources_max_replica_count: int,
    deploy_timeout_s: int,
):
    """Deploy `model` on `endpoint` with all traffic, and wait until it serves.

    Args:
        model: the imported model (`metadata.resourceName`).
        endpoint: the endpoint from the create step (`metadata.resourceName`).
        api_endpoint: the emulator's URL; empty means the real regional Vertex AI.
        deployed_model_display_name: display name of the deployed model.
        dedicated_resources_machine_type: e.g. `n1-standard-4`.
        dedicated_resources_accelerator_type: e.g. `NVIDIA_TESLA_T4`; empty for none.
        dedicated_resources_accelerator_count: accelerators per replica (0 for none).
        dedicated_resources_min_replica_count: minimum replicas.
        dedicated_resources_max_replica_count: maximum replicas.
        deploy_timeout_s: how long to wait for the deploy operation.
    """
    from google.cloud import aiplatform_v1

    from components.vertex_clients import endpoint_client

    endpoint_name = endpoint.metadata["resourceName"]
    location = endpoint_name.split("/")[3]
    machine_spec = aiplatform_v1.MachineSpec(machine_type=dedicated_resources_machine_type)
    if dedicated_resources_accelerator_type:
        machine_spec.accelerator_type = dedicated_resources_accelerator_type
        machine_spec.accelerator_count = dedicated_resources_accelerator_count
    deployed = aiplatform_v1.DeployedModel(
        model=model.metadata["resourceName"],
        display_name=deployed_model_display_name,
        dedicated_resources=aiplatform_v1.DedicatedResources(
            machine_spec=machine_spec,
            min_replica_count=dedicated_resources_min_replica_count,
            max_replica_count=dedicated_resources_max_replica_count,
        ),
    )
    client = endpoint_client(location, api_endpoint)
    print(f"deploying {deployed.model} to {endpoint_name}", flush=True)
    operation = client.deploy_model(
        endpoint=endpoint_name, deployed_model=deployed, traffic_split={"0": 100}
    )
    result = operation.result(timeout=deploy_timeout_s)
    print(f"deployed model id {result.deployed_model.id}", flush=True)
