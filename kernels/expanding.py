"""Expanding statistics over every accepted value of a machine's sensor: Welford's mean and M2, min, max.

Welford's update (Welford 1962; Knuth TAOCP vol. 2, 4.2.2) keeps the variance accurate over millions of
samples where a running sum of squares would cancel catastrophically.
"""

from __future__ import annotations

import math

from kernels.config import jit_inline
from kernels.state import F_M2, F_MEAN


@jit_inline
def update_welford(fstate, slot, base, count, x):
    """Add ``x`` as the ``count``-th value; return the new mean and population std."""
    mean = fstate[slot, base + F_MEAN]
    delta = x - mean
    mean += delta / count
    m2 = fstate[slot, base + F_M2] + delta * (x - mean)
    fstate[slot, base + F_MEAN] = mean
    fstate[slot, base + F_M2] = m2
    return mean, math.sqrt(m2 / count)


@jit_inline
def welford_mean_std(fstate, slot, base, count):
    """The current mean and population std; NaN before the first value."""
    if count == 0:
        return math.nan, math.nan
    return fstate[slot, base + F_MEAN], math.sqrt(fstate[slot, base + F_M2] / count)
