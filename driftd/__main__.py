"""`python -m driftd` is the `driftd` command."""

import sys

from driftd.monitor.cli import main

sys.exit(main())
