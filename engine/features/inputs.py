"""The inputs of the feature paths, checked: telemetry columns as arrays, the UTC offset, integer and timestamp
arrays, and the error that names what is wrong with one sample."""

from __future__ import annotations

import operator

import numpy as np
import pyarrow as pa

from compile.errors import InvalidInputError
from kernels.names import SENSORS
from kernels.state import N_SENSORS

__all__ = [
    "MAX_UTC_OFFSET_MINUTES",
    "TIMESTAMP_LIMIT",
    "integer_array",
    "machine_id_value",
    "offset_seconds",
    "sample_error",
    "telemetry_columns",
    "timestamp_array",
    "timestamp_value",
]

# Python's datetime.timezone takes offsets strictly inside one day; so do the kernel and the C library.
MAX_UTC_OFFSET_MINUTES = 24 * 60 - 1
# One range of timestamps on every path: iotengine.h's IOT_TIMESTAMP_LIMIT (tests/compile/test_edge_abi.py checks
# they agree), far beyond any real time and far enough inside int64 that the kernel's arithmetic cannot overflow.
TIMESTAMP_LIMIT = 2**62
INT64_MAX = 2**63 - 1


def telemetry_columns(table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    machine_ids = table.column("machine_id").to_numpy().astype(np.int64, copy=False)
    timestamps = table.column("timestamp").cast(pa.int64()).to_numpy()
    sensors = np.empty((table.num_rows, N_SENSORS))
    for s, name in enumerate(SENSORS):
        sensors[:, s] = table.column(name).to_numpy()
    return machine_ids, timestamps, sensors


def offset_seconds(utc_offset_minutes) -> int:
    minutes = operator.index(utc_offset_minutes)
    if not -MAX_UTC_OFFSET_MINUTES <= minutes <= MAX_UTC_OFFSET_MINUTES:
        raise InvalidInputError(f"utc_offset_minutes must be within one day, not {minutes}")
    return 60 * minutes


def integer_array(values, name: str) -> np.ndarray:
    """``values`` as int64 (n,): integers, or floats that are whole numbers; an error names the first row that
    is neither or does not fit in int64 (a uint64 above 2**63 - 1, a float of 1e19), instead of wrapping it."""
    array = np.asarray(values)
    if array.dtype.kind == "u" and array.dtype.itemsize == 8:
        bad = np.flatnonzero(array.reshape(-1) > np.uint64(INT64_MAX))
        if bad.size:
            raise InvalidInputError(f"{name}: row {bad[0]}: {array.reshape(-1)[bad[0]]} does not fit in int64")
    elif array.dtype.kind == "f":
        flat = array.reshape(-1)
        # 2**63 is exactly representable; every float below it and at or above -2**63 fits
        fits = np.isfinite(flat) & (flat == np.floor(flat)) & (flat >= -(2.0**63)) & (flat < 2.0**63)
        bad = np.flatnonzero(~fits)
        if bad.size:
            value = float(flat[bad[0]])
            raise InvalidInputError(f"{name}: row {bad[0]}: {value!r} is not an integer that fits in int64")
        return flat.astype(np.int64)
    elif array.dtype.kind not in "iu":
        raise InvalidInputError(f"{name} must be integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False).reshape(-1)


def timestamp_array(values, name: str = "timestamps_s") -> np.ndarray:
    """Seconds since the epoch as int64 (n,), from integers or datetime64 (floored to the second); an error names
    the first NaT or the first value beyond +-TIMESTAMP_LIMIT, so a batch is refused whole."""
    array = np.asarray(values)
    if array.dtype.kind == "M":
        flat = array.reshape(-1)
        bad = np.flatnonzero(np.isnat(flat))
        if bad.size:
            raise InvalidInputError(f"{name}: row {bad[0]} is NaT, not a time")
        timestamps = flat.astype("datetime64[s]").astype(np.int64)  # numpy floors sub-second parts, as the loader
    else:
        timestamps = integer_array(array, name)
    bad = np.flatnonzero((timestamps < -TIMESTAMP_LIMIT) | (timestamps > TIMESTAMP_LIMIT))
    if bad.size:
        raise InvalidInputError(
            f"{name}: row {bad[0]}: timestamp {timestamps[bad[0]]} is beyond +-2**62 seconds (IOT_TIMESTAMP_LIMIT)"
        )
    return timestamps


def machine_id_value(machine_id) -> int:
    """One machine id as a Python int: an integer (numpy or Python) within int64."""
    try:
        value = operator.index(machine_id)
    except TypeError:
        raise InvalidInputError(f"machine_id must be an integer, not {machine_id!r}") from None
    if not -(2**63) <= value <= INT64_MAX:
        raise InvalidInputError(f"machine_id {value} does not fit in int64")
    return value


def timestamp_value(timestamp_s, machine_id) -> int:
    """One timestamp as a Python int of seconds within +-TIMESTAMP_LIMIT (the C library's IOT_TIMESTAMP_LIMIT)."""
    try:
        value = operator.index(timestamp_s)
    except TypeError:
        raise InvalidInputError(
            f"machine {machine_id}: timestamp_s must be an integer number of seconds, not {timestamp_s!r}"
        ) from None
    if not -TIMESTAMP_LIMIT <= value <= TIMESTAMP_LIMIT:
        raise InvalidInputError(
            f"machine {machine_id}: timestamp {value} is beyond +-2**62 seconds (IOT_TIMESTAMP_LIMIT); nothing was "
            "applied"
        )
    return value


def sample_error(machine_id, timestamp_s, sensors) -> InvalidInputError:
    try:
        n = len(sensors)
    except TypeError:
        n = None
    if n != N_SENSORS:
        return InvalidInputError(f"machine {machine_id}: sensors must be {N_SENSORS} numbers ({', '.join(SENSORS)})")
    try:
        operator.index(timestamp_s)
    except TypeError:
        return InvalidInputError(
            f"machine {machine_id}: timestamp_s must be an integer number of seconds, not {timestamp_s!r}"
        )
    for name, value in zip(SENSORS, sensors, strict=True):
        try:
            float(value)
        except (TypeError, ValueError):
            return InvalidInputError(f"machine {machine_id}, timestamp {timestamp_s}: {name} {value!r} is not a number")
    return InvalidInputError(f"machine {machine_id}: bad sample")
