"""KFP component: the right-sizing recommendation over every candidate's sweep.

Runs after the fan-out (`dsl.ParallelFor` over the candidates) with
`.ignore_upstream_failure()`, so a candidate whose deploy failed (a stockout, a quota) does
not stop it: it reads what each branch recorded in the run history and names the cheapest
candidate that meets the SLO. The work is components/runtime/recommend.py.
"""

# No `from __future__ import annotations` here: KFP reads the real annotation objects.
from kfp import dsl
from kfp.dsl import Artifact, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def recommend(
    candidates: list,
    run_id: str,
    job_id: str,
    history: str,
    prices: dict,
    recommendation: Output[Artifact],
    required_rps: float = 0.0,
    required_tokens_per_s: float = 0.0,
    sweep_rates: str = "",
) -> str:
    """Write recommendation.json; fail when no candidate meets the SLO.

    Args:
        candidates: the pipeline's candidates (machine_type, accelerator_type,
            accelerator_count, replicas each).
        run_id: the explicit run id, if any (else the pipeline job's id names the run).
        job_id: the pipeline job's resource name (`PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER`).
        history: where the branches recorded their runs (a folder or gs://BUCKET/PREFIX).
        prices: USD per hour by machine or accelerator type, over components/prices.json.
        recommendation: folder with recommendation.json.
        required_rps: the rate the model must carry (0: choose by price per token).
        required_tokens_per_s: output tokens per second it must carry (0: none).
        sweep_rates: the sweep's rates (a knee at the top one is a lower bound).

    Returns:
        The recommended candidate's key, or "" when none qualifies (the task then fails).
    """
    import json
    import os

    from components.runtime.candidate_labels import key
    from components.runtime.make_labels import run_label
    from components.runtime.recommend import recommend_run

    result = recommend_run(
        candidates=list(candidates),
        run_label=run_label(run_id, job_id),
        history=history,
        prices=dict(prices),
        required_rps=required_rps,
        required_tokens_per_s=required_tokens_per_s,
        sweep_rates=sweep_rates,
    )
    os.makedirs(recommendation.path, exist_ok=True)
    with open(os.path.join(recommendation.path, "recommendation.json"), "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    chosen = result["recommended"]
    recommendation.metadata["recommended"] = key(chosen) if chosen else ""
    if chosen is None:
        raise SystemExit(f"no recommendation: {result['reason']}")
    print(f"recommended: {key(chosen)} x {result['replicas']} replica(s)")
    return key(chosen)
