"""The rolling z-score rule on the raw sensors: the simplest unsupervised detector, a peer of the autoencoder.

A sample's score is the largest, over its sensors present, of ``|x - mean| / (std + eps)``, with the mean and
population std of the machine's previous ``window`` accepted values of that sensor (fewer at the start; NaN
before two). Machines and time order as the feature kernel applies them.
"""

from __future__ import annotations

import math

import numpy as np

from kernels.config import jit
from kernels.names import N_SENSORS
from kernels.state import EPS

__all__ = ["rolling_zscore_rule"]


@jit
def rolling_zscore_rule(order, slots, machines, columns, window, out):
    """Write each row's score into ``out`` (n,); ``order``, ``slots`` and ``columns`` as in
    :func:`engine.features.batch_driver.run_zscore_rule` gives them."""
    ring = np.zeros((machines, N_SENSORS, window))
    count = np.zeros((machines, N_SENSORS), dtype=np.int64)
    for k in range(order.shape[0]):
        i = order[k]
        slot = slots[i]
        best = -1.0
        for s in range(N_SENSORS):
            x = columns[s][i]
            if not math.isfinite(x):
                continue
            c = min(count[slot, s], window)
            if c >= 2:
                total = 0.0
                for j in range(c):
                    total += ring[slot, s, j]
                mean = total / c
                square = 0.0
                for j in range(c):
                    square += (ring[slot, s, j] - mean) ** 2
                z = abs(x - mean) / (math.sqrt(square / c) + EPS)
                if z > best:
                    best = z
            ring[slot, s, count[slot, s] % window] = x
            count[slot, s] += 1
        out[i] = best if best >= 0.0 else math.nan
