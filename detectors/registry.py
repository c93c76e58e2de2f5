"""The plain dict of column methods, and the names `--stattest` and the policy accept.

Adding a method: write `detectors/<name>.py` with a `UnivariateMethod` subclass and add an
instance here; the conformance tests loop over `METHODS` and pick it up.
"""

from __future__ import annotations

from collections.abc import Iterable

from driftd.detectors.base import UnivariateMethod
from driftd.detectors.chisquare import ChiSquare
from driftd.detectors.jensenshannon import JensenShannon
from driftd.detectors.ks import KS
from driftd.detectors.psi import PSI
from driftd.detectors.wasserstein import Wasserstein

METHODS: dict[str, UnivariateMethod] = {
    m.name: m for m in (KS(), PSI(), JensenShannon(), Wasserstein(), ChiSquare())
}

# Method names that are not column methods: `ece` is calibration, computed whenever a
# probability prediction and labels are present; naming it selects no column method.
MODEL_METHODS: tuple[str, ...] = ("ece",)

VALID_METHOD_NAMES: tuple[str, ...] = tuple(sorted((*METHODS, *MODEL_METHODS)))


def check_method_names(names: Iterable[str]) -> None:
    """Raise ValueError naming the first unknown method and listing the valid ones."""
    for name in names:
        if name not in METHODS and name not in MODEL_METHODS:
            valid = ", ".join(VALID_METHOD_NAMES)
            raise ValueError(f"unknown drift method {name!r}; valid methods: {valid}")
