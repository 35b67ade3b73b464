"""KFP component: the exit task. Runs on success, on failure of any task, and on cancel."""

from kfp import dsl
from kfp.dsl import Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def cleanup_endpoints(
    project: str,
    location: str,
    run_id: str,
    job_id: str,
    api_endpoint: str,
    timeout_s: int,
    record: Output[dsl.Artifact],
    prices: dict = {},  # noqa: B006 (a KFP default, never mutated)
):
    """Undeploy every model from, and delete, every endpoint labelled with this run.

    Takes only plain strings: an exit task may not depend on other tasks, and a task that
    died half-way may not have written the endpoint it created.

    Args:
        project: the project (or the emulated one).
        location: the region.
        run_id: the explicit run id, if any (the label is built as the create step built it).
        job_id: the pipeline job's resource name (`PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER`).
        api_endpoint: the emulator's URL; empty means the real regional Vertex AI.
        timeout_s: bound on the whole clean-up (deploys in flight are cancelled, not waited out).
        record: JSON record of what was deleted, how long it took, and the run's cost.
        prices: USD per hour by machine or accelerator type, over `components/prices.json`.
    """
    import json

    from components.cost import billing_id_from_environment, describe, run_cost
    from components.runtime.cleanup import CleanupIncomplete, cleanup_run
    from components.runtime.make_labels import run_label

    result = cleanup_run(
        project=project,
        location=location,
        run_label=run_label(run_id, job_id),
        api_endpoint=api_endpoint,
        timeout_s=timeout_s,
        log=lambda line: print(line, flush=True),
    )
    result.billing_id = billing_id_from_environment()
    data = json.loads(result.to_json())
    data["cost"] = run_cost(data, prices)
    print(f"cost: {describe(data['cost'])}", flush=True)
    with open(record.path, "w") as f:
        json.dump(data, f, indent=2)
    record.metadata["cost_usd"] = data["cost"]["usd"]
    record.metadata["endpoints_deleted"] = sum(e.deleted for e in result.endpoints)
    record.metadata["left"] = len(result.left)
    if not result.ok:
        raise CleanupIncomplete(f"clean-up left {result.left}")
