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
    final_status: dsl.PipelineTaskFinalStatus,
    prices: dict = {},  # noqa: B006 (a KFP default, never mutated)
    history: str = "",
    notify_webhook: str = "",
    notify_webhook_secret: str = "",
    notify_topic: str = "",
    notify_timeout_s: float = 10.0,
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
        final_status: the exit handler's final state, filled by Vertex AI Pipelines (and the
            embedded one): the message's outcome; never passed by the pipeline.
        prices: USD per hour by machine or accelerator type, over `components/prices.json`.
        history: the run history, for the message's regression verdict ('' = none).
        notify_webhook: a webhook URL for the message (Google Chat / Slack JSON); '' = none.
        notify_webhook_secret: a Secret Manager secret version whose payload is the webhook
            URL (`projects/P/secrets/S/versions/V`); '' = none.
        notify_topic: a Pub/Sub topic for the message (`projects/P/topics/T`); '' = none.
        notify_timeout_s: bound on sending the message, all destinations together; sent
            after the clean-up, and a failing destination never fails this task.
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
    if notify_webhook or notify_webhook_secret or notify_topic:  # after the clean-up work
        from components.runtime.notify import notify_run_end

        record.metadata["notify"] = notify_run_end(
            final_status=final_status,
            cleanup=data,
            history=history,
            run_label=result.run_label,
            webhook=notify_webhook,
            webhook_secret=notify_webhook_secret,
            topic=notify_topic,
            timeout_s=notify_timeout_s,
        )
    if not result.ok:
        raise CleanupIncomplete(f"clean-up left {result.left}")
