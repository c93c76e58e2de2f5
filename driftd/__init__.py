"""driftd: drift and production monitoring for machine-learning models.

The one installed import name. `from driftd import compare` is the Python API (the same
comparison as `driftd check`); the daemon lives in `driftd.monitor`, the statistics in
`driftd.detectors`, alert destinations in `driftd.sinks` and HTML reports in `driftd.reports`.
Importing `driftd` itself loads nothing heavy: `compare` is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Comparison", "__version__", "compare"]

if TYPE_CHECKING:
    from driftd.api import Comparison, compare


def __getattr__(name: str) -> Any:
    if name in ("compare", "Comparison"):
        from driftd import api

        return getattr(api, name)
    raise AttributeError(f"module 'driftd' has no attribute {name!r}")
