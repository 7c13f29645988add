"""Count-based window of the last ``WINDOW`` accepted values of a sensor, and its EWM.

The window statistics are recomputed from the ring buffer on every sample (at most five values) rather than
kept as running sums: the cost is the same constant, and the result never drifts however long the stream.
The mean is taken around the window's first stored value, so a window of identical values (a stuck sensor)
has exactly that value as mean and exactly zero as std, as pandas reports it.
"""

from __future__ import annotations

import math

from kernels.config import jit_inline
from kernels.state import EWM_ALPHA, F_EWM, F_RING, WINDOW


@jit_inline
def push(fstate, slot, base, count_before, x):
    """Store ``x`` over the oldest value of the ring (``count_before`` values were accepted before it)."""
    fstate[slot, base + F_RING + count_before % WINDOW] = x


@jit_inline
def window_mean_std(fstate, slot, base, count):
    """Mean and population std of the ``min(count, WINDOW)`` values in the ring; NaN for an empty ring."""
    n = min(count, WINDOW)
    if n == 0:
        return math.nan, math.nan
    if n == WINDOW:  # the usual case: the constant length lets the compiler unroll the loops (same sums, same order)
        return ring_mean_std(fstate, slot, base, WINDOW)
    return ring_mean_std(fstate, slot, base, n)


@jit_inline
def ring_mean_std(fstate, slot, base, n):
    """Mean and population std of the first ``n`` values of the ring, taken around the first one."""
    shift = fstate[slot, base + F_RING]
    total = 0.0
    for k in range(n):
        total += fstate[slot, base + F_RING + k] - shift
    mean = shift + total / n
    squares = 0.0
    for k in range(n):
        d = fstate[slot, base + F_RING + k] - mean
        squares += d * d
    return mean, math.sqrt(squares / n)


@jit_inline
def update_ewm(fstate, slot, base, count_before, x):
    """pandas ``ewm(span=5, adjust=False)``: the first value, then ``a*x + (1-a)*ewm``."""
    if count_before == 0:
        value = x
    else:
        value = EWM_ALPHA * x + (1.0 - EWM_ALPHA) * fstate[slot, base + F_EWM]
    fstate[slot, base + F_EWM] = value
    return value
