"""One-pass value checks over a column, for tables that are already in the telemetry schema.

NumPy's ``np.isinf(a).any()`` builds a boolean array as large as the column first; these read each value once
and allocate nothing, which matters when the check is all that stands between a table and the feature kernel.
"""

from __future__ import annotations

from kernels.config import jit

__all__ = ["all_within", "any_beyond"]


@jit
def any_beyond(values, limit):
    """True when some value ``v`` has ``abs(v) > limit``, +-inf included (NaN is not)."""
    found = False
    for k in range(values.shape[0]):
        found |= abs(values[k]) > limit
    return found


@jit
def all_within(values, low, high):
    """True when every value ``v`` has ``low <= v <= high`` (so NaN fails)."""
    inside = True
    for k in range(values.shape[0]):
        inside &= low <= values[k] <= high
    return inside
