"""The pipeline graph: one graph, the one that goes to Vertex AI and runs offline too.

    import model ─┐  import locustfile ─┐  make labels ─┐  serving API ─┐
                  ▼                     ▼               ▼               ▼
    ┌──────────────── ExitHandler("Deploy & test model") ──────────────────┐
    │ create endpoint ───┬─► deploy model ─► load test ─► record ─► gate    │
    │ reference answers ─┘   (correctness phase, then the load)            │
    └───────────────────────────┬──────────────────────────────────────────┘
                                ▼ always: success, failure, cancel
                  clean up every endpoint labelled with this run

Google Cloud Pipeline Components create the endpoint and deploy the model; our components
(components/) compute the reference answers, load-test, record, gate and clean up.
`deploytest run` submits this very graph to the embedded Vertex AI's Pipelines
(emulator/pipeline_jobs.py), which runs GCPC's own launchers, so the offline run is the
production path.
"""

from typing import Any

from kfp import dsl

PIPELINE_NAME = "deploytest"
EXIT_HANDLER_NAME = "Deploy & test model"
# The task name of GCPC's ModelDeployOp in the compiled spec: callers bound its run time.
DEPLOY_TASK = "model-deploy"

# Pipeline parameters and their defaults: one table that compile, submit and run share.
DEFAULTS: dict[str, Any] = {
    "project": "deploytest-local",
    "location": "us-central1",
    "model": "",
    "locustfile": "",
    "api_endpoint": "",
    "run_id": "",
    "endpoint_display_name": "deploytest-endpoint",
    "machine_type": "n1-standard-4",
    "accelerator_type": "",
    "accelerator_count": 0,
    "min_replicas": 1,
    "max_replicas": 1,
    "users": 8,
    "spawn_rate": 8.0,
    "duration": "20s",
    "processes": 1,
    "max_new_tokens": 16,
    "slo_p95_ms": 1000.0,
    "max_failure_ratio": 0.01,
    "min_rps": 1.0,
    "cost_labels": {},
    # LLM serving metrics and load shapes (components/load_options.py); 0 means unset.
    "stream": False,
    "load_shape": "users",
    "rate": 0.0,
    "max_concurrency": 64,
    "steps": "",
    "sweep_rates": "1,2,4,8,16,32,64",
    "stage_s": 10.0,
    "slo_ttft_ms": 0.0,
    "slo_tpot_ms": 0.0,
    "slo_checks": [],
    # The serving API the load test speaks (loadtests/apis.py); auto: from the model's
    # containerSpec, decided before the endpoint is created.
    "api": "auto",
    "deploy_timeout_s": 1800,
    "cleanup_timeout_s": 900,
    # USD per hour by machine or accelerator type, over components/prices.json
    "prices": {},
    # CMEK for the endpoint (`submit --kms-key-name` sets it; the emulator ignores it).
    # Empty: Google-managed.
    "encryption_spec_key_name": "",
    # Run history (history/): where records go, what a regression does ("" = fail for
    # scheduled runs, warn otherwise), what started the run, and the template it came from.
    "history": "",
    "regression": "",
    "trigger": "manual",
    "template": "",
    # The correctness phase before the load (correctness/phase.py): parity with a reference
    # model ("artifact": the deployed model's own artifactUri; "none": no parity check; or a
    # folder / gs:// prefix), the team's expectations (JSONL, a path or gs://), K tokens,
    # the gate's least ratios, the largest reference loaded, and what drift of the answers
    # from the series' last PASS run does (fail, warn or off).
    "reference_model": "artifact",
    "expectations": "",
    "parity_tokens": 16,
    "min_parity": 1.0,
    "min_expect_pass": 1.0,
    "reference_max_mb": 2000.0,
    "correctness_drift": "warn",
    # A local folder keeping reference answers between runs (`deploytest run` sets it).
    "reference_cache": "",
    # The message when a run ends (components/runtime/notify.py), sent by the clean-up exit
    # task after its work: a webhook URL, a Secret Manager secret version holding one (on
    # Vertex AI), a Pub/Sub topic; each '' = none. The send is bounded by notify_timeout_s.
    "notify_webhook": "",
    "notify_webhook_secret": "",
    "notify_topic": "",
    "notify_timeout_s": 10.0,
    # The workload (loadtests/workload.py) as its canonical JSON: input and output lengths in
    # tokens, a dataset, a shared prefix, sessions. "": the locustfile's prompts file and
    # max_new_tokens.
    "workload": "",
    # Right-sizing (pipelines/candidates.py): the machine shapes to compare, each deployed
    # and swept on its own endpoint; the rate (or output tokens/s) the model must carry.
    # Only the right-sizing graph (build_pipeline(rightsize=True)) reads them.
    "candidates": [],
    "required_rps": 0.0,
    "required_tokens_per_s": 0.0,
}


def build_pipeline(
    notify_emails: tuple[str, ...] | list[str] = (), rightsize: bool = False, parallelism: int = 1
):
    """Return the pipeline function.

    `rightsize`: the right-sizing graph: the create, deploy, load test and record of one run
    fan out with `dsl.ParallelFor` over the `candidates` parameter, `parallelism` branches
    at a time (KFP takes it at compile time), and a recommendation task after the fan-out
    names the cheapest candidate that meets the SLO (components/recommend.py) in place of
    the single run's gate. The clean-up exit task takes every endpoint of the run down.

    `notify_emails`: recipients of GCPC's `VertexNotificationEmailOp`, compiled in (Vertex AI
    only: GCPC documents that it "works only on Vertex Pipelines"; the embedded Vertex AI
    does not run it, so `deploytest run` never compiles it in). KFP allows one exit task per
    `dsl.ExitHandler` and no nested exit handlers (its compiler refuses an ExitHandler below
    the pipeline's outermost scope), and the clean-up is the exit task; so the email task
    runs after the exit handler group with `.ignore_upstream_failure()`, which KFP compiles
    to the exit task's trigger (ALL_UPSTREAM_TASKS_COMPLETED) with the group as the producer
    of its `PipelineTaskFinalStatus`. Whether Vertex AI runs such a task after a cancel, as
    it runs an exit task, is not documented; the webhook and Pub/Sub message, sent by the
    exit task itself, do not depend on it.
    """
    from google_cloud_pipeline_components.types.artifact_types import VertexModel
    from google_cloud_pipeline_components.v1.endpoint import EndpointCreateOp, ModelDeployOp

    from components.candidate_labels import candidate_labels
    from components.cleanup import cleanup_endpoints
    from components.load_test import locust_load_test
    from components.make_labels import make_labels
    from components.recommend import recommend
    from components.record_run import record_run
    from components.reference_answers import reference_answers
    from components.serving_api import serving_api
    from components.slo_gate import slo_gate

    d = DEFAULTS
    # The run label's source when no run id is given: the job's resource name, whose last
    # segment (the pipelineJobId) is unique in the location; the display name is not
    # (components/runtime/make_labels.py).
    job = dsl.PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Deploy a model to a Vertex AI endpoint, load-test it with Locust, gate "
        "on SLOs, and always clean the endpoint up.",
    )
    def deploytest_pipeline(
        model: str,
        locustfile: str,
        model_uri: str,
        project: str = d["project"],
        location: str = d["location"],
        api_endpoint: str = d["api_endpoint"],
        run_id: str = d["run_id"],
        endpoint_display_name: str = d["endpoint_display_name"],
        machine_type: str = d["machine_type"],
        accelerator_type: str = d["accelerator_type"],
        accelerator_count: int = d["accelerator_count"],
        min_replicas: int = d["min_replicas"],
        max_replicas: int = d["max_replicas"],
        users: int = d["users"],
        spawn_rate: float = d["spawn_rate"],
        duration: str = d["duration"],
        processes: int = d["processes"],
        max_new_tokens: int = d["max_new_tokens"],
        slo_p95_ms: float = d["slo_p95_ms"],
        max_failure_ratio: float = d["max_failure_ratio"],
        min_rps: float = d["min_rps"],
        cost_labels: dict = d["cost_labels"],
        stream: bool = d["stream"],
        load_shape: str = d["load_shape"],
        rate: float = d["rate"],
        max_concurrency: int = d["max_concurrency"],
        steps: str = d["steps"],
        sweep_rates: str = d["sweep_rates"],
        stage_s: float = d["stage_s"],
        slo_ttft_ms: float = d["slo_ttft_ms"],
        slo_tpot_ms: float = d["slo_tpot_ms"],
        slo_checks: list = d["slo_checks"],
        api: str = d["api"],
        deploy_timeout_s: int = d["deploy_timeout_s"],
        cleanup_timeout_s: int = d["cleanup_timeout_s"],
        prices: dict = d["prices"],
        encryption_spec_key_name: str = d["encryption_spec_key_name"],
        history: str = d["history"],
        regression: str = d["regression"],
        trigger: str = d["trigger"],
        template: str = d["template"],
        reference_model: str = d["reference_model"],
        expectations: str = d["expectations"],
        parity_tokens: int = d["parity_tokens"],
        min_parity: float = d["min_parity"],
        min_expect_pass: float = d["min_expect_pass"],
        reference_max_mb: float = d["reference_max_mb"],
        correctness_drift: str = d["correctness_drift"],
        reference_cache: str = d["reference_cache"],
        notify_webhook: str = d["notify_webhook"],
        notify_webhook_secret: str = d["notify_webhook_secret"],
        notify_topic: str = d["notify_topic"],
        notify_timeout_s: float = d["notify_timeout_s"],
        workload: str = d["workload"],
        candidates: list = d["candidates"],
        required_rps: float = d["required_rps"],
        required_tokens_per_s: float = d["required_tokens_per_s"],
    ):
        model_import = dsl.importer(
            artifact_uri=model_uri,
            artifact_class=VertexModel,
            metadata={"resourceName": model},
            reimport=True,
        ).set_display_name("import model")
        locustfile_import = dsl.importer(
            artifact_uri=locustfile, artifact_class=dsl.Artifact, reimport=True
        ).set_display_name("import locustfile")
        labels = make_labels(
            run_id=run_id,
            job_id=job,
            cost_labels=cost_labels,
            deploy_timeout_s=deploy_timeout_s,
            duration=duration,
            cleanup_timeout_s=cleanup_timeout_s,
            candidates=candidates,
        ).set_display_name("labels")

        # Before anything is created: a container no rule knows costs no deploy.
        serving = serving_api(
            model=model,
            api=api,
            stream=stream,
            location=location,
            api_endpoint=api_endpoint,
            workload=workload,
        ).set_display_name("serving API")

        # Declared first; takes plain strings only (an exit task may not depend on tasks).
        cleanup = cleanup_endpoints(
            project=project,
            location=location,
            run_id=run_id,
            job_id=job,
            api_endpoint=api_endpoint,
            timeout_s=cleanup_timeout_s,
            prices=prices,
            history=history,
            notify_webhook=notify_webhook,
            notify_webhook_secret=notify_webhook_secret,
            notify_topic=notify_topic,
            notify_timeout_s=notify_timeout_s,
        ).set_display_name("clean up")

        def branch(endpoint_labels, machine, accelerator, count, low, high, candidate=None):
            """Create, deploy, load-test and record on one machine shape."""
            create = EndpointCreateOp(
                project=project,
                location=location,
                display_name=endpoint_display_name,
                labels=endpoint_labels,
                encryption_spec_key_name=encryption_spec_key_name,
            ).set_display_name("create endpoint")
            create.after(serving)
            endpoint = create.outputs["endpoint"]
            deploy = ModelDeployOp(
                model=model_import.output,
                endpoint=endpoint,
                traffic_split={"0": 100},
                deployed_model_display_name=endpoint_display_name,
                dedicated_resources_machine_type=machine,
                dedicated_resources_accelerator_type=accelerator,
                dedicated_resources_accelerator_count=count,
                dedicated_resources_min_replica_count=low,
                dedicated_resources_max_replica_count=high,
            ).set_display_name("deploy model")
            deploy.after(reference)
            load_test = (
                locust_load_test(
                    locustfile=locustfile_import.output,
                    endpoint=endpoint,
                    api_endpoint=api_endpoint,
                    location=location,
                    users=users,
                    spawn_rate=spawn_rate,
                    duration=duration,
                    processes=processes,
                    max_new_tokens=max_new_tokens,
                    stream=stream,
                    load_shape=load_shape,
                    rate=rate,
                    max_concurrency=max_concurrency,
                    steps=steps,
                    sweep_rates=sweep_rates,
                    stage_s=stage_s,
                    slo_ttft_ms=slo_ttft_ms,
                    slo_tpot_ms=slo_tpot_ms,
                    slo_p95_ms=slo_p95_ms,
                    max_failure_ratio=max_failure_ratio,
                    api=serving.output,
                    tokenizer_uri=model_uri,
                    model=model,
                    reference=reference.outputs["reference"],
                    expectations=expectations,
                    parity_tokens=parity_tokens,
                    workload=workload,
                )
                .after(deploy)
                .set_display_name("load test")
            )
            # After the load test, before the gate: a failing gate still leaves the record.
            record = record_run(
                stats=load_test.outputs["stats"],
                model=model_import.output,
                history=history,
                regression=regression,
                trigger=trigger,
                template=template,
                run_id=run_id,
                job_id=job,
                location=location,
                api_endpoint=api_endpoint,
                machine_type=machine,
                accelerator_type=accelerator,
                accelerator_count=count,
                min_replicas=low,
                max_replicas=high,
                users=users,
                spawn_rate=spawn_rate,
                duration=duration,
                max_new_tokens=max_new_tokens,
                slo_p95_ms=slo_p95_ms,
                max_failure_ratio=max_failure_ratio,
                min_rps=min_rps,
                min_parity=min_parity,
                min_expect_pass=min_expect_pass,
                slo_checks=slo_checks,
                **({"candidate": candidate} if candidate is not None else {}),
            ).set_display_name("record and verdict")
            return [create, deploy, load_test, record]

        with dsl.ExitHandler(cleanup, name=EXIT_HANDLER_NAME) as exit_handler:
            # Before the deploy: a reference that cannot be loaded or a bad expectations
            # line stops the run before anything is deployed (beside the endpoint's creation).
            reference = reference_answers(
                model=model,
                location=location,
                api_endpoint=api_endpoint,
                api=serving.output,
                reference_model=reference_model,
                expectations=expectations,
                parity_tokens=parity_tokens,
                reference_max_mb=reference_max_mb,
                cache=reference_cache,
            ).set_display_name("reference answers")
            if rightsize:
                # One endpoint per candidate, `parallelism` at a time (GPU quota is finite;
                # offline 1, so that candidates do not share this machine's CPU).
                with dsl.ParallelFor(candidates, parallelism=parallelism) as c:
                    branch_labels = candidate_labels(
                        labels=labels.output, candidate=c
                    ).set_display_name("candidate labels")
                    tasks = [branch_labels] + branch(
                        branch_labels.output,
                        c.machine_type,
                        c.accelerator_type,
                        c.accelerator_count,
                        c.replicas,
                        c.replicas,
                        candidate=c,
                    )
                # Whatever each branch did: a failed deploy is a candidate marked failed.
                choice = (
                    recommend(
                        candidates=candidates,
                        run_id=run_id,
                        job_id=job,
                        history=history,
                        prices=prices,
                        required_rps=required_rps,
                        required_tokens_per_s=required_tokens_per_s,
                        sweep_rates=sweep_rates,
                    )
                    .after(*tasks)
                    .ignore_upstream_failure()
                    .set_display_name("recommendation")
                )
                tasks.append(choice)
            else:
                tasks = branch(
                    labels.output,
                    machine_type,
                    accelerator_type,
                    accelerator_count,
                    min_replicas,
                    max_replicas,
                )
                create, deploy, load_test, record = tasks
                tasks.append(
                    slo_gate(
                        metrics=load_test.outputs["metrics"],
                        max_p95_ms=slo_p95_ms,
                        max_failure_ratio=max_failure_ratio,
                        min_rps=min_rps,
                        regression_verdict=record.outputs["Output"],
                        regression=regression,
                        trigger=trigger,
                        extra_checks=slo_checks,
                        min_parity=min_parity,
                        min_expect_pass=min_expect_pass,
                        correctness_drift=correctness_drift,
                        history=history,
                    ).set_display_name("gate")
                )

        if notify_emails:
            from google_cloud_pipeline_components.v1.vertex_notification_email import (
                VertexNotificationEmailOp,
            )

            email = (
                VertexNotificationEmailOp(recipients=list(notify_emails))
                .after(exit_handler)
                .ignore_upstream_failure()
                .set_display_name("email")
            )
            email.set_caching_options(False)

        # A cached create or deploy would skip the very resources the run must prove.
        for task in (model_import, locustfile_import, labels, serving, cleanup, reference, *tasks):
            task.set_caching_options(False)

    return deploytest_pipeline
