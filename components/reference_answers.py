"""KFP v2 component: the correctness phase's reference answers, before the deploy.

Runs beside the endpoint's creation; the deploy waits for it, so a reference model that
cannot be loaded, or an expectations file with a bad line, stops the run before anything
is deployed (the exit handler deletes the empty endpoint). The greedy answers it saves are
what the load test compares the endpoint's with. The work is
components/runtime/correctness.py.
"""

# No `from __future__ import annotations` here: KFP reads the real annotation objects.
from kfp import dsl
from kfp.dsl import Artifact, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def reference_answers(
    model: str,
    location: str,
    api_endpoint: str,
    api: str,
    reference_model: str,
    expectations: str,
    parity_tokens: int,
    reference_max_mb: float,
    reference: Output[Artifact],
    cache: str = "",
) -> str:
    """Loads the reference model and saves its greedy answers to the phase's prompts.

    Args:
        model: the Model Registry model to deploy (`projects/P/locations/L/models/M`).
        location: the region, for the Model Registry.
        api_endpoint: the emulator's URL; empty means the real regional Vertex AI.
        api: the serving API (resolved upstream): openai-chat renders the prompts through
            the chat template; one that cannot decode greedily gets no reference.
        reference_model: "artifact" (the model's own artifactUri), "none", or a
            transformers folder / gs:// prefix.
        expectations: the team's expectations (JSONL, a path or gs://), read and checked
            here, before the deploy.
        parity_tokens: K, the tokens decoded and compared per prompt.
        reference_max_mb: the largest reference model loaded here (a bigger one: parity is
            reported as not measured).
        reference: a folder with reference.json and the model's tokenizer, or skipped.json
            saying why there is no reference.
        cache: a local folder keeping the answers of local reference models between runs
            (`deploytest run` sets one in its cache folder); empty: none.

    Returns:
        A line saying what was done.
    """
    from components.runtime.correctness import reference_answers as work

    return work(
        model=model,
        location=location,
        api_endpoint=api_endpoint,
        api=api,
        reference_model=reference_model,
        expectations=expectations,
        tokens=parity_tokens,
        reference_max_mb=reference_max_mb,
        out_dir=reference.path,
        cache=cache,
    )
