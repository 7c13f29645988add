"""Each sensor's machine history as it stood before a sample: the Welford mean and population std of the
machine's earlier accepted values of that sensor (NaN before its first).

These are the inputs of the unsupervised detector (engine/models/autoencoder.py) that describe a sensor's own
baseline without containing the value it predicts: the 67 features' expanding statistics include the current
sample. They are the feature state's ``mean`` and ``sqrt(M2 / count)`` before the sample is applied
(kernels/state.py), read and advanced with the feature kernel's own functions (kernels/expanding.py), so every
path gives the same bits: the batch path replays the rows from empty states, the streaming path from copies of
the states before a micro-batch, and the C library reads its state before iot_features (iot_history).
"""

from __future__ import annotations

from kernels.config import jit
from kernels.expanding import update_welford, welford_mean_std
from kernels.names import N_SENSORS, SENSOR_SHORT
from kernels.state import F_PER_SENSOR, I_COUNT, SENSOR_LIMIT
from kernels.step import sensor_value

__all__ = ["HISTORY_NAMES", "N_HISTORY", "replay_history"]

HISTORY_NAMES: tuple[str, ...] = (
    *(f"{s}_history_mean" for s in SENSOR_SHORT),
    *(f"{s}_history_std" for s in SENSOR_SHORT),
)
N_HISTORY = len(HISTORY_NAMES)


@jit
def replay_history(fstate, istate, order, slots, x, accepted, out):
    """Write into row ``i`` of ``out`` (n, 10) sample ``i``'s history (5 means, then 5 stds) for each ``i`` of
    ``order``, then apply the sample to the state's Welford statistics when ``accepted[i]``.

    ``fstate``, ``istate`` are states of the machines (kernels/state.py; only the Welford fields and counts are
    read and written), ``slots[i]`` the state row of sample ``i``; ``x`` the samples' sensors, as rows (n, 5) or a
    tuple of five columns. A NaN or infinite value is missing and leaves its sensor's history unchanged.
    """
    for k in range(order.shape[0]):
        i = order[k]
        slot = slots[i]
        for s in range(N_SENSORS):
            base = s * F_PER_SENSOR
            count = istate[slot, I_COUNT + s]
            mean, std = welford_mean_std(fstate, slot, base, count)
            out[i, s] = mean
            out[i, N_SENSORS + s] = std
            value = sensor_value(x, i, s)
            if accepted[i] and abs(value) <= SENSOR_LIMIT:
                istate[slot, I_COUNT + s] = count + 1
                update_welford(fstate, slot, base, count + 1, value)
