"""One sample of one machine -> 67 features, and the driver that runs it over many samples.

This is the single kernel behind both the batch path (``engine.features.batch.compute_features``) and the
streaming path (``engine.features.stream.FeatureStream``): same code, same operations in the same order, so the two
give the same bits. The formulas and the handling of missing and late samples are those of
../shared/spec/features.md.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload

from kernels import calendar, expanding, rolling
from kernels.config import JIT_OPTIONS, jit, jit_inline
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
    SENSOR_LIMIT,
    TEMPERATURE,
)

ACCEPTED = 0
LATE = 1


def sensor_value(x, row, s):
    """Sensor ``s`` of sample ``row`` of ``x``, whichever of the three forms the caller holds (see below)."""
    raise NotImplementedError("only callable from jitted code")


@overload(sensor_value, inline="always", jit_options=JIT_OPTIONS)
def _sensor_value_of(x, row, s):
    # Rows (n, 5), or five scalars, so that a single sample from Python allocates nothing, or a table's five
    # columns (kernels/history.py replays them as they are).
    if isinstance(x, types.Array):
        return lambda x, row, s: x[row, s]
    if isinstance(x, types.UniTuple) and isinstance(x.dtype, types.Float):
        return lambda x, row, s: x[s]
    if isinstance(x, types.UniTuple) and isinstance(x.dtype, types.Array):
        return lambda x, row, s: x[s][row]
    return None


@jit_inline
def step(fstate, istate, slot, timestamp_s, x, xi, offset_s, out, oi):
    """Update machine ``slot`` with one sample and write its 67 features into row ``oi`` of ``out``.

    Parameters
    ----------
    fstate, istate : ndarray
        The state (see :mod:`kernels.state`); only row ``slot`` is read and written.
    slot : int
    timestamp_s : int
        Seconds since the epoch, UTC.
    x : ndarray of shape (n, 5), or tuple of five floats
        The sensors (row ``xi`` of the array; ``xi`` is ignored for the tuple); NaN or infinite = missing.
    offset_s : int
        Fixed offset added to the timestamp for the calendar features.
    out : ndarray of shape (m, 67), any layout, float64 or float32
        Each feature is computed in float64 and rounded once when stored.

    Returns
    -------
    int
        ``ACCEPTED``, or ``LATE`` (older than the machine's last accepted sample): then the state is untouched
        and ``out`` is all NaN.
    """
    if istate[slot, I_SAMPLES] > 0 and timestamp_s < istate[slot, I_LAST_TS]:
        for j in range(N_FEATURES):
            out[oi, j] = math.nan
        return LATE
    istate[slot, I_SAMPLES] += 1
    istate[slot, I_LAST_TS] = timestamp_s

    deviation_slot = 0
    temperature = vibration = humidity = pressure = energy = math.nan
    for s in range(N_SENSORS):
        base = s * F_PER_SENSOR
        value = sensor_value(x, xi, s)
        count_before = istate[slot, I_COUNT + s]
        missing = not abs(value) <= SENSOR_LIMIT  # NaN, +-inf and absurd values (kernels/state.py)
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

        out[oi, RAW_AT + s] = value
        if s == 0:
            temperature = value
        elif s == 1:
            vibration = value
        elif s == 2:
            humidity = value
        elif s == 3:
            pressure = value
        else:
            energy = value
        if missing:
            out[oi, TRANSFORM_AT + 3 * s] = math.nan
            out[oi, TRANSFORM_AT + 3 * s + 1] = math.nan
            out[oi, TRANSFORM_AT + 3 * s + 2] = math.nan
        else:
            clipped = max(value, 0.0)
            out[oi, TRANSFORM_AT + 3 * s] = value * value
            out[oi, TRANSFORM_AT + 3 * s + 1] = math.sqrt(clipped)
            out[oi, TRANSFORM_AT + 3 * s + 2] = math.log1p(clipped)
        out[oi, ZSCORE_AT + s] = zscore
        out[oi, ROLLING_AT + 3 * s] = roll_mean
        out[oi, ROLLING_AT + 3 * s + 1] = roll_std
        out[oi, ROLLING_AT + 3 * s + 2] = ewm
        out[oi, DIFF_AT + s] = diff
        if s == 0 or s == 1 or s == 3:  # DEVIATION_SENSORS: temperature, vibration, pressure
            deviation = abs(value - roll_mean)  # NaN when the value is missing
            out[oi, DEVIATION_AT + 2 * deviation_slot] = deviation
            out[oi, DEVIATION_AT + 2 * deviation_slot + 1] = deviation / (roll_std + EPS)
            deviation_slot += 1
        if s == TEMPERATURE:
            out[oi, TEMP_MACHINE_AT] = machine_mean
            out[oi, TEMP_MACHINE_AT + 1] = machine_std
            if count > 0:
                low = fstate[slot, F_TEMP_MIN]
                high = fstate[slot, F_TEMP_MAX]
                out[oi, TEMP_MACHINE_AT + 2] = low
                out[oi, TEMP_MACHINE_AT + 3] = high
                out[oi, TEMP_MACHINE_AT + 4] = high - low
            else:
                out[oi, TEMP_MACHINE_AT + 2] = math.nan
                out[oi, TEMP_MACHINE_AT + 3] = math.nan
                out[oi, TEMP_MACHINE_AT + 4] = math.nan

    # Interactions of the raw values (NaN when missing, so a missing factor gives NaN), taken in float64
    # before any rounding of the output.
    out[oi, INTERACTION_AT] = temperature * vibration
    out[oi, INTERACTION_AT + 1] = humidity * pressure
    out[oi, INTERACTION_AT + 2] = energy * temperature
    calendar.write_calendar(timestamp_s, offset_s, out, oi, TIME_AT)
    return ACCEPTED


@jit
def drive(fstate, istate, order, slots, timestamps, sensors, offset_s, out, status):
    """Run :func:`step` over rows ``order[0], order[1], ...``; row ``i`` writes ``out[i]`` and ``status[i]``."""
    for k in range(order.shape[0]):
        i = order[k]
        status[i] = step(fstate, istate, slots[i], timestamps[i], sensors, i, offset_s, out, i)


@jit
def drive_part(fstate, istate, order, slots, timestamps, columns, offset_s, out, status, owner, part):
    """:func:`drive` over the table's five sensor ``columns`` (a tuple of (n,) arrays, not copied), for the rows
    of the machines ``owner`` gives to ``part`` (``owner[slot] == part``); ``out`` may be float64 or float32.
    ``status`` must start at zero: only late rows are written.

    Threads that run disjoint parts share no state and write disjoint rows, so together they give the bits of
    one :func:`drive` over every row, in any interleaving.
    """
    temperature, vibration, humidity, pressure, energy = columns
    x = np.empty((1, N_SENSORS))
    for k in range(order.shape[0]):
        i = order[k]
        slot = slots[i]
        if owner[slot] == part:
            x[0, 0] = temperature[i]
            x[0, 1] = vibration[i]
            x[0, 2] = humidity[i]
            x[0, 3] = pressure[i]
            x[0, 4] = energy[i]
            # status is written only for a late sample: rows of other threads share its cache lines
            if step(fstate, istate, slot, timestamps[i], x, 0, offset_s, out, i) != ACCEPTED:
                status[i] = LATE


@jit
def step_one(fstate, istate, slot, timestamp_s, t, v, h, p, e, offset_s, out):
    """:func:`step` for five sensor scalars: the lowest-overhead call from Python (see :func:`step_one_direct`).

    ``out`` is allocated by the caller: returning an array Numba allocated costs more to box than the
    whole step.
    """
    return step(fstate, istate, slot, timestamp_s, (t, v, h, p, e), 0, offset_s, out.reshape((1, N_FEATURES)), 0)


STEP_ONE_SIGNATURE = (
    types.float64[:, ::1],
    types.int64[:, ::1],
    types.int64,
    types.int64,
    *([types.float64] * N_SENSORS),
    types.int64,
    types.float64[::1],
)


def step_one_direct():
    """:func:`step_one` compiled for :data:`STEP_ONE_SIGNATURE`, as the function Numba's dispatcher would call.

    Calling it skips the dispatcher's typing of eleven arguments (a third of a call from Python). It converts
    each argument to its type, so the caller checks first what a conversion would hide (an integer timestamp);
    an int beyond int64 raises OverflowError before anything runs.
    """
    return step_one.compile(STEP_ONE_SIGNATURE)
