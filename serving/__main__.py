"""Container entrypoint: `python -m serving` (see serving/Dockerfile)."""

import sys

from serving.server import main

sys.exit(main())
