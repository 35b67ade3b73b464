"""The container image our Python components run in on Vertex AI.

kfp.local's SubprocessRunner ignores it; on Vertex it must hold this package (built from
components/Dockerfile). Read once at import so `deploytest compile` can point at a build.
"""

import os

COMPONENT_IMAGE = os.environ.get(
    "DEPLOYTEST_COMPONENT_IMAGE",
    "us-docker.pkg.dev/deploytest/deploytest/components:latest",
)
