"""`python -m emulator`: the same as `deploytest emulator`."""

import sys

from emulator.cli import main

sys.exit(main())
