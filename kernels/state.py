"""Layout of the per-machine feature state: two fixed-size rows per machine slot.

``fstate`` (float64, shape (slots, F_WIDTH)) holds, per sensor, the ring buffer of the last ``WINDOW`` accepted
values, the Welford mean and M2, the EWM and the last accepted value, then the temperature min and max.
``istate`` (int64, shape (slots, I_WIDTH)) holds, per sensor, the count of accepted values, then the count of
accepted samples and the last accepted timestamp. Two arrays instead of a dozen keep the call from Python
cheap (Numba unboxes each array argument separately) and make the state one block to snapshot or port to C.

The size of a slot never depends on how much history the machine has: that is what makes the features O(1).
"""

from __future__ import annotations

import numpy as np

WINDOW = 5
EWM_ALPHA = 2.0 / (WINDOW + 1.0)  # pandas ewm(span=5, adjust=False)
EPS = 1e-6
# A reading beyond this magnitude is no physical reading of these sensors (the Kaggle data stays below 1e4): it is
# missing, as NaN and +-inf are. That keeps every square and Welford sum finite, in float64 and in the C library's
# float builds (1e9**2 * 2**32 < FLT_MAX), so one absurd value cannot poison a machine's statistics for ever.
SENSOR_LIMIT = 1e9

N_SENSORS = 5
TEMPERATURE = 0

# float state, per sensor s: base = s * F_PER_SENSOR
F_RING = 0  # WINDOW values, oldest overwritten first
F_MEAN = WINDOW
F_M2 = WINDOW + 1
F_EWM = WINDOW + 2
F_LAST = WINDOW + 3
F_PER_SENSOR = WINDOW + 4
F_TEMP_MIN = N_SENSORS * F_PER_SENSOR
F_TEMP_MAX = F_TEMP_MIN + 1
F_WIDTH = F_TEMP_MAX + 1

# int state
I_COUNT = 0  # per sensor: accepted values so far
I_SAMPLES = N_SENSORS  # accepted samples (not late), whatever their sensors
I_LAST_TS = N_SENSORS + 1  # timestamp of the last accepted sample, valid when I_SAMPLES > 0
I_WIDTH = N_SENSORS + 2


def allocate(slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Empty state for ``slots`` machines: every machine starts with no history."""
    fstate = np.zeros((slots, F_WIDTH), dtype=np.float64)
    istate = np.zeros((slots, I_WIDTH), dtype=np.int64)
    return fstate, istate


def state_column_names() -> tuple[list[str], list[str]]:
    """Names of the columns of ``fstate`` and ``istate``, for snapshots."""
    sensors = ("temp", "vib", "hum", "pres", "energy")
    fnames = []
    for s in sensors:
        fnames += [f"{s}_ring_{k}" for k in range(WINDOW)]
        fnames += [f"{s}_mean", f"{s}_m2", f"{s}_ewm", f"{s}_last"]
    fnames += ["temp_min", "temp_max"]
    inames = [f"{s}_count" for s in sensors] + ["samples", "last_timestamp"]
    assert len(fnames) == F_WIDTH and len(inames) == I_WIDTH
    return fnames, inames
