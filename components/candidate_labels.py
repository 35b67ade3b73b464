"""KFP component: a right-sizing candidate's endpoint labels (the run's plus its own)."""

from kfp import dsl

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def candidate_labels(labels: dict, candidate: dict) -> dict:
    """Add `deploytest-candidate=<key>` to the run's labels.

    Args:
        labels: the run's labels (make_labels).
        candidate: one item of the pipeline's `candidates` list (machine_type,
            accelerator_type, accelerator_count, replicas).

    Returns:
        The label dict for this candidate's `EndpointCreateOp`.
    """
    from components.runtime.candidate_labels import candidate_labels as build

    out = build(labels, candidate)
    print(f"labels: {out}")
    return out
