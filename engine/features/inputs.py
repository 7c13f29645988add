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
    "integer_array",
    "offset_seconds",
    "sample_error",
    "telemetry_columns",
    "timestamp_array",
]

# Python's datetime.timezone takes offsets strictly inside one day; so do the kernel and the C library.
MAX_UTC_OFFSET_MINUTES = 24 * 60 - 1


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
    array = np.asarray(values)
    if array.dtype.kind not in "iu":
        if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
            return array.astype(np.int64).reshape(-1)
        raise InvalidInputError(f"{name} must be integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False).reshape(-1)


def timestamp_array(values) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind == "M":
        return array.astype("datetime64[s]").astype(np.int64)
    return integer_array(array, "timestamps_s")


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
