"""The benchmark data shape shared by every bench script: 25 columns, 20 numeric, 5 categorical.

Scripts run as `python bench/<name>.py`, so this module is importable as `shape`.
"""

NUMERIC = 20
CATEGORICAL = 5
CATEGORY_COUNTS = (3, 8, 20, 50, 200)  # distinct categories of cat_0 .. cat_4


def feature_kinds() -> dict[str, str]:
    """Feature name -> kind, as a driftd model config declares them."""
    kinds = {f"num_{i:02d}": "numeric" for i in range(NUMERIC)}
    kinds.update({f"cat_{j}": "categorical" for j in range(CATEGORICAL)})
    return kinds
