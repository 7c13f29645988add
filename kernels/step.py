"""One sample of one machine -> 67 features, and the driver that runs it over many samples.

This is the single kernel behind both the batch path (``engine.features.batch.compute_features``) and the
streaming path (``engine.features.stream.FeatureStream``): same code, same operations in the same order, so the two
give the same bits. The formulas and the handling of missing and late samples are those of
../shared/spec/features.md.
"""

from __future__ import annotations

import math

import numpy as np

from kernels import calendar, expanding, rolling
from kernels.config import jit
from kernels.names import (
    DEVIATION_AT,
    DIFF_AT,
    INTERACTION_AT,
    N_FEATURES,
    RAW_AT,
    ROLLING_AT,
    TEMP_MACHINE_AT,
    TIME_AT,
    TRANSFORM_AT,
    ZSCORE_AT,
)
from kernels.state import (
    EPS,
    F_EWM,
    F_LAST,
    F_PER_SENSOR,
    F_TEMP_MAX,
    F_TEMP_MIN,
    I_COUNT,
    I_LAST_TS,
    I_SAMPLES,
    N_SENSORS,
    TEMPERATURE,
)

ACCEPTED = 0
LATE = 1


@jit
def step(fstate, istate, slot, timestamp_s, x, offset_s, out):
    """Update machine ``slot`` with one sample and write its 67 features into ``out``.

    Parameters
    ----------
    fstate, istate : ndarray
        The state (see :mod:`kernels.state`); only row ``slot`` is read and written.
    slot : int
    timestamp_s : int
        Seconds since the epoch, UTC.
    x : ndarray of shape (5,)
        The sensors; NaN or infinite = missing.
    offset_s : int
        Fixed offset added to the timestamp for the calendar features.
    out : ndarray of shape (67,)

    Returns
    -------
    int
        ``ACCEPTED``, or ``LATE`` (older than the machine's last accepted sample): then the state is untouched
        and ``out`` is all NaN.
    """
    if istate[slot, I_SAMPLES] > 0 and timestamp_s < istate[slot, I_LAST_TS]:
        for j in range(N_FEATURES):
            out[j] = math.nan
        return LATE
    istate[slot, I_SAMPLES] += 1
    istate[slot, I_LAST_TS] = timestamp_s

    deviation_slot = 0
    for s in range(N_SENSORS):
        base = s * F_PER_SENSOR
        value = x[s]
        count_before = istate[slot, I_COUNT + s]
        missing = not math.isfinite(value)
        if missing:
            count = count_before
            roll_mean, roll_std = rolling.window_mean_std(fstate, slot, base, count)
            ewm = fstate[slot, base + F_EWM] if count > 0 else math.nan
            machine_mean, machine_std = expanding.welford_mean_std(fstate, slot, base, count)
            value = math.nan
            zscore = math.nan
            diff = math.nan
        else:
            count = count_before + 1
            istate[slot, I_COUNT + s] = count
            rolling.push(fstate, slot, base, count_before, value)
            roll_mean, roll_std = rolling.window_mean_std(fstate, slot, base, count)
            ewm = rolling.update_ewm(fstate, slot, base, count_before, value)
            machine_mean, machine_std = expanding.update_welford(fstate, slot, base, count, value)
            zscore = (value - machine_mean) / (machine_std + EPS)
            diff = value - fstate[slot, base + F_LAST] if count_before > 0 else 0.0
            fstate[slot, base + F_LAST] = value
            if s == TEMPERATURE:
                if count_before == 0 or value < fstate[slot, F_TEMP_MIN]:
                    fstate[slot, F_TEMP_MIN] = value
                if count_before == 0 or value > fstate[slot, F_TEMP_MAX]:
                    fstate[slot, F_TEMP_MAX] = value

        out[RAW_AT + s] = value
        if missing:
            out[TRANSFORM_AT + 3 * s] = math.nan
            out[TRANSFORM_AT + 3 * s + 1] = math.nan
            out[TRANSFORM_AT + 3 * s + 2] = math.nan
        else:
            clipped = max(value, 0.0)
            out[TRANSFORM_AT + 3 * s] = value * value
            out[TRANSFORM_AT + 3 * s + 1] = math.sqrt(clipped)
            out[TRANSFORM_AT + 3 * s + 2] = math.log1p(clipped)
        out[ZSCORE_AT + s] = zscore
        out[ROLLING_AT + 3 * s] = roll_mean
        out[ROLLING_AT + 3 * s + 1] = roll_std
        out[ROLLING_AT + 3 * s + 2] = ewm
        out[DIFF_AT + s] = diff
        if s == 0 or s == 1 or s == 3:  # DEVIATION_SENSORS: temperature, vibration, pressure
            deviation = abs(value - roll_mean)  # NaN when the value is missing
            out[DEVIATION_AT + 2 * deviation_slot] = deviation
            out[DEVIATION_AT + 2 * deviation_slot + 1] = deviation / (roll_std + EPS)
            deviation_slot += 1
        if s == TEMPERATURE:
            out[TEMP_MACHINE_AT] = machine_mean
            out[TEMP_MACHINE_AT + 1] = machine_std
            if count > 0:
                low = fstate[slot, F_TEMP_MIN]
                high = fstate[slot, F_TEMP_MAX]
                out[TEMP_MACHINE_AT + 2] = low
                out[TEMP_MACHINE_AT + 3] = high
                out[TEMP_MACHINE_AT + 4] = high - low
            else:
                out[TEMP_MACHINE_AT + 2] = math.nan
                out[TEMP_MACHINE_AT + 3] = math.nan
                out[TEMP_MACHINE_AT + 4] = math.nan

    # Interactions read the raw values just written, so a missing factor gives NaN.
    out[INTERACTION_AT] = out[RAW_AT] * out[RAW_AT + 1]
    out[INTERACTION_AT + 1] = out[RAW_AT + 2] * out[RAW_AT + 3]
    out[INTERACTION_AT + 2] = out[RAW_AT + 4] * out[RAW_AT]
    calendar.write_calendar(timestamp_s, offset_s, out, TIME_AT)
    return ACCEPTED


@jit
def drive(fstate, istate, order, slots, timestamps, sensors, offset_s, out, status):
    """Run :func:`step` over rows ``order[0], order[1], ...``; row ``i`` writes ``out[i]`` and ``status[i]``."""
    for k in range(order.shape[0]):
        i = order[k]
        status[i] = step(fstate, istate, slots[i], timestamps[i], sensors[i], offset_s, out[i])


@jit
def step_one(fstate, istate, slot, timestamp_s, t, v, h, p, e, offset_s, out):
    """:func:`step` for five sensor scalars: the lowest-overhead call from Python.

    ``out`` is allocated by the caller: returning an array Numba allocated costs more to box than the
    whole step.
    """
    x = np.empty(N_SENSORS)
    x[0] = t
    x[1] = v
    x[2] = h
    x[3] = p
    x[4] = e
    return step(fstate, istate, slot, timestamp_s, x, offset_s, out)
