"""KFP component: the labels every resource of the run carries."""

from kfp import dsl

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def make_labels(
    run_id: str,
    job_id: str,
    cost_labels: dict,
    deploy_timeout_s: int = 1800,
    duration: str = "20s",
    cleanup_timeout_s: int = 900,
    candidates: list = [],  # noqa: B006 (KFP takes a list default as the parameter's default)
) -> dict:
    """Build `deploytest-run`, `deploytest-managed`, `deploytest-expires-at` and the team's
    cost labels.

    Args:
        run_id: an explicit run id (`deploytest run` sets one); empty on Vertex.
        job_id: the pipeline job's resource name, a plain string
            (`PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER`).
        cost_labels: the team's cost labels (team, environment, GPU type).
        deploy_timeout_s: the deploy's bound; part of the expiry.
        duration: the load test's length (Locust time span); part of the expiry.
        cleanup_timeout_s: the clean-up's bound; part of the expiry.
        candidates: right-sizing candidates: each one more deploy and load test before
            the clean-up (the expiry counts them as if one ran after the other).

    Returns:
        The label dict for `EndpointCreateOp`.
    """
    import time

    from components.runtime.load_test import parse_duration
    from components.runtime.make_labels import expires_at, resource_labels

    branches = max(1, len(candidates))
    expires = expires_at(
        time.time(),
        deploy_timeout_s * branches,
        parse_duration(duration) * branches,
        cleanup_timeout_s,
    )
    labels = resource_labels(run_id, job_id, cost_labels, expires)
    print(f"labels: {labels}")
    return labels
