"""The container image our Python components run in on Vertex AI.

kfp.local's SubprocessRunner ignores it; on Vertex it must hold this package (built from
components/Dockerfile and pushed by cloudbuild.yaml). KFP reads `base_image` when a
component module is imported, so the image is fixed before the first import:
`DEPLOYTEST_COMPONENT_IMAGE`, or `pin()` (what `deploytest compile --component-image` calls).
"""

import os
import re
import sys

ENV = "DEPLOYTEST_COMPONENT_IMAGE"
# A placeholder that no build pushes: compile for Vertex with --component-image (the
# tests/infra checks fail on a compiled YAML that names an image no build step produces).
DEFAULT_IMAGE = "us-docker.pkg.dev/deploytest/deploytest/components:latest"
COMPONENT_IMAGE = os.environ.get(ENV, DEFAULT_IMAGE)

# REGISTRY[:PORT]/PATH followed by :TAG or @sha256:DIGEST (or both).
IMAGE_RE = re.compile(
    r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(@sha256:[0-9a-f]{64})?$"
)
_COMPONENT_MODULES = (
    "components.cleanup",
    "components.load_test",
    "components.make_labels",
    "components.slo_gate",
)


def pin(image: str) -> None:
    """Make every component declared from now on run in `image` (a tag or a digest)."""
    global COMPONENT_IMAGE
    if not IMAGE_RE.match(image) or not (":" in image.rsplit("/", 1)[-1] or "@" in image):
        raise ValueError(
            f"invalid component image {image!r}: expected REGISTRY/PATH/NAME:TAG or "
            "REGISTRY/PATH/NAME@sha256:DIGEST"
        )
    loaded = [m for m in _COMPONENT_MODULES if m in sys.modules]
    if loaded and image != COMPONENT_IMAGE:
        raise RuntimeError(f"components already declared with {COMPONENT_IMAGE}: {loaded}")
    os.environ[ENV] = image
    COMPONENT_IMAGE = image
