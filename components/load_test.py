"""KFP v2 component: load-test a Vertex AI endpoint with real Locust.

The `endpoint` input is the `google.VertexEndpoint` artifact made upstream (GCPC's
EndpointCreateOp); it is typed as a generic `Artifact`, which any
artifact type may feed (tests/components/test_load_test_kfp.py compiles that wiring). Only
`endpoint.metadata["resourceName"]` (`projects/P/locations/L/endpoints/E`) is read.

Host: `api_endpoint` when non-empty (the local emulator, e.g. `http://127.0.0.1:PORT`, no auth),
else `https://{location}-aiplatform.googleapis.com` with a Google access token.

The work is components/runtime/load_test.py. The body imports only plain-Python modules:
inside a running component `kfp.dsl` is the slim runtime module, so this module (which
decorates with `dsl.component`) cannot be imported there.

Outputs: `report` is Locust's HTML report (Vertex shows it as an HTML artifact), `metrics` holds
the numbers of components.metrics_schema.LOGGED_METRICS, `stats` is a folder with Locust's CSV
and JSON stats, its log and `metrics.json`.

Note for pipeline authors: a load test must never come from the cache; on Vertex call
`.set_caching_options(False)` on the task.
"""

# No `from __future__ import annotations` here: KFP reads the real annotation objects.
from typing import Optional

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Metrics, Output

# The image the component runs in on Vertex: env DEPLOYTEST_COMPONENT_IMAGE at import time, else
# us-docker.pkg.dev/deploytest/deploytest/components:latest (one definition, components/image.py).
# kfp.local's SubprocessRunner(use_venv=False) ignores it and runs in the current venv.
from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def locust_load_test(
    locustfile: Input[Artifact],
    endpoint: Input[Artifact],
    api_endpoint: str,
    location: str,
    users: int,
    spawn_rate: float,
    duration: str,
    processes: int,
    max_new_tokens: int,
    report: Output[HTML],
    metrics: Output[Metrics],
    stats: Output[Artifact],
    stream: bool = False,
    load_shape: str = "users",
    rate: float = 0.0,
    max_concurrency: int = 64,
    steps: str = "",
    sweep_rates: str = "1,2,4,8,16,32,64",
    stage_s: float = 10.0,
    slo_ttft_ms: float = 0.0,
    slo_tpot_ms: float = 0.0,
    slo_p95_ms: float = 0.0,
    max_failure_ratio: float = 0.01,
    api: str = "deploytest",
    tokenizer_uri: str = "",
    model: str = "",
    reference: Optional[Input[Artifact]] = None,  # noqa: UP045 (KFP reads Optional)
    expectations: str = "",
    parity_tokens: int = 16,
    workload: str = "",
):
    """Runs Locust headless against the endpoint's predict URL and records report and metrics.

    Args:
        locustfile: the locustfile (imported from Cloud Storage on Vertex, a local file here).
        endpoint: the endpoint under test; only `metadata["resourceName"]` is read.
        api_endpoint: the emulator's URL (no auth); empty means the regional Vertex AI host
            with a Google access token.
        location: the region, for the Vertex AI host.
        users: concurrent Locust users.
        spawn_rate: users started per second.
        duration: run time in Locust's format (`20s`, `2m`, `1h30m`).
        processes: Locust processes; -1 for one per core.
        max_new_tokens: tokens requested per prediction.
        stream: stream tokens through `:streamRawPredict` (TTFT, ITL, TPOT measured).
        load_shape: users (closed loop), rate, steps or sweep (open loop; loadtests/shapes.py).
        rate: arrivals per second for `rate` (0: unset).
        max_concurrency: users carrying open-loop arrivals.
        steps: `DURATION:RATE,...` stages for `steps`.
        sweep_rates: rising rates for `sweep`.
        stage_s: seconds per sweep stage.
        slo_ttft_ms: per-request TTFT target for goodput (0: none).
        slo_tpot_ms: per-request TPOT target for goodput (0: none).
        slo_p95_ms: the sweep's E2E p95 target (0: none).
        max_failure_ratio: the sweep's failure-ratio target.
        api: the serving API to speak (loadtests/apis.py; resolved upstream, never auto).
        tokenizer_uri: the model artifact's folder (local or gs://), or the imported
            VertexModel's URI (then the model's artifactUri); its tokenizer.json counts the
            output tokens of answers that carry no count (empty: estimated).
        model: the Model Registry model deployed (`projects/P/locations/L/models/M`), whose
            artifactUri holds the tokenizer when `tokenizer_uri` is the model's VertexModel URI.
        reference: the `reference answers` task's folder (components/reference_answers.py):
            the reference model's greedy answers and tokenizer; none: no parity check.
        expectations: the team's expectations (JSONL, a path or gs://; empty: none).
        parity_tokens: K, the tokens asked for per prompt.
        workload: the workload spec as JSON (loadtests/workload.py): input and output lengths
            in tokens, a dataset (a path here, gs:// on Vertex), a shared prefix, sessions;
            built with the model's tokenizer. Empty: the locustfile's prompts file with
            `max_new_tokens`.
        report: Locust's HTML report.
        metrics: latency percentiles, requests/s, failure ratio, output tokens/s.
        stats: folder with Locust's CSV/JSON stats, its log, `metrics.json` and
            `correctness.json`.
    """
    import os
    import shutil

    from components.load_options import LoadOptions
    from components.metrics_schema import (
        CORRECTNESS_LOGGED_METRICS,
        LLM_LOGGED_METRICS,
        LOGGED_METRICS,
        SCHEMA_VERSION,
    )
    from components.runtime.correctness import model_artifact_uri, run_correctness
    from components.runtime.load_test import (
        fetch_tokenizer,
        output_files,
        predict_target,
        prepare_workload,
        run_locust,
    )

    resource = endpoint.metadata.get("resourceName", "")
    host, path, auth = predict_target(resource, api_endpoint, location, api, stream)
    os.makedirs(stats.path, exist_ok=True)
    if tokenizer_uri.startswith(("http://", "https://")) and model:  # a VertexModel's URI
        tokenizer_uri = model_artifact_uri(model, location, api_endpoint)
    # Before the load, through the non-streaming route: a wrong model fails cheaply.
    correctness = run_correctness(
        url=host + predict_target(resource, api_endpoint, location, api, False)[1],
        api=api,
        auth=auth,
        reference_dir=reference.path if reference is not None else "",
        expectations=expectations,
        tokens=parity_tokens,
        out_dir=stats.path,
    )
    tokenizer = fetch_tokenizer(api, tokenizer_uri, stats.path)
    workload, context = prepare_workload(workload, tokenizer, stats.path)
    load = LoadOptions(
        api=api,
        tokenizer=tokenizer,
        workload=workload,
        context_tokens=context,
        stream=stream,
        load_shape=load_shape,
        rate=rate or None,
        max_concurrency=max_concurrency,
        steps=steps,
        sweep_rates=sweep_rates,
        stage_s=stage_s,
        slo_ttft_ms=slo_ttft_ms or None,
        slo_tpot_ms=slo_tpot_ms or None,
        slo_p95_ms=slo_p95_ms or None,
        max_failure_ratio=max_failure_ratio,
    )
    if not os.path.isfile(locustfile.path):
        raise FileNotFoundError(f"locustfile artifact {locustfile.uri} is not a file here")
    result = run_locust(
        locustfile=locustfile.path,
        host=host,
        path=path,
        users=users,
        spawn_rate=spawn_rate,
        duration=duration,
        processes=processes,
        out_dir=stats.path,
        max_new_tokens=max_new_tokens,
        auth=auth,
        load=load,
        correctness=correctness,
    )
    os.makedirs(os.path.dirname(report.path) or ".", exist_ok=True)
    shutil.copyfile(output_files(stats.path)["report"], report.path)
    for name in LOGGED_METRICS:
        metrics.log_metric(name, result[name])
    for name in LLM_LOGGED_METRICS + CORRECTNESS_LOGGED_METRICS:
        if result.get(name) is not None:  # only those measured: a Metrics value is a number
            metrics.log_metric(name, result[name])
    stats.metadata["schema_version"] = SCHEMA_VERSION
    stats.metadata["files"] = sorted(os.listdir(stats.path))
    stats.metadata["endpoint"] = endpoint.metadata.get("resourceName", "")
