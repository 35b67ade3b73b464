"""The deploytest platform stack (CDKTF, Python).

Nothing here imports the project's Python packages: the only door into them is the
`deploytest` command, which the Scheduler construct calls at synth time.
"""

import os


def silence_node_warnings() -> None:
    """jsii prints a banner per process when Node.js is past end-of-life (Node 20 here).

    The runtime works; the banner drowns test and synth output. Set before jsii starts.
    """
    os.environ.setdefault(
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", ",".join(str(v) for v in range(14, 40))
    )
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
