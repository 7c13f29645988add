"""The 67 features computed by pandas, the oracle of the Numba kernel (and, through it, of the C kernel).

The implementation is :func:`bench.baselines.pandas_features`, the pandas peer of the feature benchmarks: one
pandas implementation serves both, so the benchmarks time the code the tests trust. It is written from the spec
with groupby/rolling/ewm/expanding and shares no code with kernels/. ``exact_windows=True`` recomputes each
rolling window in long double (pandas' online rolling sums leave ~1e-8 residues on stuck sensors).
"""

from __future__ import annotations

import numpy as np

from bench.baselines import PythonFeatureStream
from bench.baselines import pandas_features as _pandas_features
from kernels.names import FEATURE_NAMES

__all__ = ["TOLERANCE", "PythonFeatureStream", "assert_close_to_oracle", "bits", "pandas_features"]

# The oracle computes in another order of operations than the kernel: agreement to 1e-9 relative or absolute.
TOLERANCE = {"rtol": 1e-9, "atol": 1e-9, "equal_nan": True}


def pandas_features(table, utc_offset_minutes: int = 0) -> np.ndarray:
    """The features of every row of ``table``, by pandas, with exact rolling windows."""
    return _pandas_features(table, utc_offset_minutes, exact_windows=True)


def assert_close_to_oracle(features: np.ndarray, oracle: np.ndarray) -> None:
    """Every value within :data:`TOLERANCE` of the oracle's (NaN where it has NaN); names the first that is not."""
    bad = ~np.isclose(features, oracle, **TOLERANCE)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        names = sorted({FEATURE_NAMES[j] for j in np.nonzero(bad)[1]})
        raise AssertionError(
            f"{bad.sum()} values differ in {names}; first: row {row} {FEATURE_NAMES[col]} "
            f"kernel {features[row, col]!r} oracle {oracle[row, col]!r}"
        )


def bits(a: np.ndarray) -> np.ndarray:
    """The IEEE bits of float64 values, to compare them exactly (NaN payloads and -0.0 included)."""
    return np.ascontiguousarray(a).view(np.uint64)
