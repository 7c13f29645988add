"""Comparing scores with the reference, :meth:`engine.bundle.format.Bundle.predict` with each model's own library
(LightGBM, scikit-learn's treelite reading, numpy): the oracle every backend is measured against."""

from __future__ import annotations

import numpy as np

__all__ = ["assert_equals_lightgbm", "assert_scores_close"]


def assert_scores_close(got: dict, expected: dict, tolerance: float, rows=slice(None)) -> None:
    """Every score within ``tolerance`` (absolute) of the reference's, and the same failure type names; NaN only
    where the reference is NaN. ``rows`` picks the rows of ``got`` that ``expected`` holds."""
    for name, column in expected.items():
        if name == "failure_type":
            assert (np.asarray(got[name])[rows] == column).all(), name
            continue
        values = np.asarray(got[name], dtype=np.float64)[rows]
        assert np.array_equal(np.isnan(values), np.isnan(column)), f"{name}: NaN in other places"
        diff = np.nanmax(np.abs(values - column)) if values.size else 0.0
        assert diff <= tolerance, f"{name}: max |difference| {diff} > {tolerance}"


def assert_equals_lightgbm(model, booster, X: np.ndarray) -> None:
    """A compiled model (``predict(X, raw=)``, as compile.binding.NativeModel) gives LightGBM's transformed and raw
    scores bit for bit."""
    expected = booster.predict(X)
    assert np.array_equal(model.predict(X).reshape(expected.shape), expected)
    raw = booster.predict(X, raw_score=True)
    assert np.array_equal(model.predict(X, raw=True).reshape(raw.shape), raw)
