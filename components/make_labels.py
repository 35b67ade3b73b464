"""KFP component: the labels every resource of the run carries."""

from kfp import dsl

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def make_labels(run_id: str, job_id: str, cost_labels: dict) -> dict:
    """Build `deploytest-run`, `deploytest-managed` and the team's cost labels.

    Args:
        run_id: an explicit run id (`deploytest run` sets one); empty on Vertex.
        job_id: the pipeline job id, passed as a plain string (`PIPELINE_JOB_NAME_PLACEHOLDER`).
        cost_labels: the team's cost labels (team, environment, GPU type).

    Returns:
        The label dict for `EndpointCreateOp` and our local create op.
    """
    from components.labels import resource_labels

    labels = resource_labels(run_id, job_id, cost_labels)
    print(f"labels: {labels}")
    return labels
