"""Distances in units in the last place, for comparing the C kernel with the Numba kernel: two compilers may round
``sqrt``/``log``/``sin`` tables' consumers a few ulp apart, never more."""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_ULP", "TOLERANCE", "assert_features_agree", "ulp_distance"]

TOLERANCE = 1e-12  # relative, for values near zero where a few ulp are a large relative step
MAX_ULP = 4


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in units in the last place between doubles (0 for equal values and for two NaNs).

    >>> float(ulp_distance(np.array([1.0]), np.array([np.nextafter(1.0, 2.0)]))[0])
    1.0
    >>> float(ulp_distance(np.array([-0.0]), np.array([0.0]))[0])
    0.0
    """
    # Map the sign-magnitude bit patterns onto one monotonic integer line (-0.0 and +0.0 both at 0).
    ia, ib = np.ascontiguousarray(a).view(np.int64), np.ascontiguousarray(b).view(np.int64)
    ma = np.where(ia < 0, np.int64(-(2**63)) - ia, ia)
    mb = np.where(ib < 0, np.int64(-(2**63)) - ib, ib)
    same_side = (ma >= 0) == (mb >= 0)  # then the difference cannot overflow
    distance = np.where(
        same_side, np.abs(ma - mb).astype(np.float64), np.abs(ma.astype(np.float64)) + np.abs(mb.astype(np.float64))
    )
    return np.where((np.isnan(a) & np.isnan(b)) | (a == b), 0.0, distance)


def assert_features_agree(c_out: np.ndarray, numba_out: np.ndarray) -> int:
    """NaN in the same places, every other value within MAX_ULP (or TOLERANCE); returns the largest ulp seen."""
    assert np.array_equal(np.isnan(c_out), np.isnan(numba_out)), "NaN in different places"
    ulp = ulp_distance(c_out, numba_out)
    with np.errstate(invalid="ignore", over="ignore"):
        relative = np.abs(c_out - numba_out) / np.maximum(np.abs(numba_out), 1e-300)
    close = (ulp <= MAX_ULP) | (relative <= TOLERANCE) | np.isnan(numba_out)
    assert close.all(), f"{(~close).sum()} features differ by more than {MAX_ULP} ulp"
    return int(ulp.max())
