"""`python -m driftd` is the `driftd` command."""

from driftd.monitor.cli import entry

entry()
