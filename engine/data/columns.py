"""Conversion of raw Arrow columns to the telemetry schema's types; a bad value raises a TelemetryError that
names the source, the column and its first bad row (found by bisection, since pyarrow's own errors carry no row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.data.schema import FAILURE_TYPES, INT_DOMAINS
from engine.errors import TelemetryError
from kernels.state import SENSOR_LIMIT

__all__ = [
    "Where",
    "cast_strings",
    "clean_text",
    "first_failing",
    "first_null",
    "is_text",
    "one_array",
    "require_no_nulls",
    "to_failure_type",
    "to_float",
    "to_int",
    "to_label_float",
    "to_sensor",
    "to_timestamp",
]


@dataclass(frozen=True)
class Where:
    """Where values come from, so that errors can point at them."""

    source: str
    is_csv: bool

    def row(self, index: int) -> str:
        # CSV line = header line + 1-based data row.
        return f"row {index} (line {index + 2})" if self.is_csv else f"row {index}"

    def error(self, column: str, index: int, problem: str) -> TelemetryError:
        return TelemetryError(f"{self.source}: column {column!r}, {self.row(index)}: {problem}")


def one_array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def first_failing(column: pa.Array, convert) -> int:
    """Index of the first element that ``convert`` rejects, found by bisection over prefixes."""
    lo, hi = 0, len(column)  # invariant: column[:lo] converts, column[:hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            convert(column.slice(0, mid))
            lo = mid
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
    return lo


def is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def clean_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Trim text cells; a blank cell is a missing value, like an empty one."""
    if not is_text(column.type):
        return column
    trimmed = pc.utf8_trim_whitespace(column)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, column.type), trimmed)


def cast_strings(column, to: pa.DataType, name: str, where: Where, what: str):
    array = one_array(column)
    try:
        return pc.cast(array, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        bad = first_failing(array, lambda a: pc.cast(a, to))
        raise where.error(name, bad, f"cannot parse {array[bad].as_py()!r} as {what}") from None


def first_null(column: pa.ChunkedArray | pa.Array) -> int:
    return int(np.flatnonzero(pc.is_null(column).to_numpy(zero_copy_only=False))[0])


def require_no_nulls(column, name: str, where: Where) -> None:
    if column.null_count:
        raise where.error(name, first_null(column), "value is missing")


UTC_SECONDS = pa.timestamp("s", tz="UTC")


# The times telemetry can carry: 1900-01-01 up to 2200-01-01 (UTC). Outside them an integer column is in another
# unit (epoch milliseconds of 2025 read as seconds are the year 56971) or the value is garbage; either way no
# stage should run on it, and every stage can handle what is inside.
EARLIEST_S = -2_208_988_800  # 1900-01-01T00:00:00Z
LATEST_S = 7_258_118_400  # 2200-01-01T00:00:00Z, excluded
INTEGER_TEXT = r"^\s*[+-]?[0-9]+\s*$"


def to_timestamp(column: pa.ChunkedArray, where: Where) -> pa.ChunkedArray:
    """The timestamp column as ``timestamp[s, UTC]``.

    Text: "2025-01-01 00:00:00" (Kaggle) or ISO 8601, with a fraction of a second or not; without a zone it is UTC,
    with one ("Z", "+01:00") every value must carry one. Text of an integer is seconds since the epoch, as integer
    columns are (the documented unit: milliseconds would be refused below). Sub-second parts are floored.
    """
    name = "timestamp"
    require_no_nulls(column, name, where)
    kind = column.type
    if is_text(kind):
        array = one_array(column)
        # The first value decides the form for the whole column: a column that mixes forms has no single meaning.
        if pc.match_substring_regex(array.slice(0, 1), INTEGER_TEXT)[0].as_py():
            seconds = cast_strings(pc.utf8_trim_whitespace(array), pa.int64(), name, where, "epoch seconds")
            parsed = pc.cast(seconds, UTC_SECONDS)
        else:
            try:
                pc.cast(array.slice(0, 1), pa.timestamp("ns"))
                naive = True
            except pa.ArrowInvalid:
                naive = False
            if naive:
                parsed = cast_strings(array, pa.timestamp("ns"), name, where, "a timestamp")
            else:
                parsed = cast_strings(array, pa.timestamp("ns", tz="UTC"), name, where, "a timestamp with a zone")
            parsed = pc.cast(pc.floor_temporal(parsed, unit="second"), UTC_SECONDS, safe=False)
        result = pa.chunked_array([parsed])
    elif pa.types.is_timestamp(kind):
        if kind.unit != "s":
            column = pc.floor_temporal(column, unit="second")
        # Arrow stores zoned timestamps as UTC and reads zone-less ones as UTC here, so the cast only changes
        # the unit and the zone label, never the instant.
        result = pc.cast(column, UTC_SECONDS, safe=False)
    elif pa.types.is_date(kind):
        result = pc.cast(pc.cast(column, pa.timestamp("s")), UTC_SECONDS)
    elif pa.types.is_integer(kind):  # seconds since the epoch
        result = pc.cast(pc.cast(column, pa.int64()), UTC_SECONDS)
    else:
        raise TelemetryError(f"{where.source}: column 'timestamp' has type {kind}; expected timestamps or text")
    check_plausible_times(result, kind, where)
    return result


def plausible_times(column: pa.ChunkedArray) -> bool:
    """True when every timestamp (``timestamp[s]``) is within 1900-01-01 .. 2200-01-01 UTC."""
    low, high = pc.min_max(column.cast(pa.int64())).values()
    return EARLIEST_S <= low.as_py() and high.as_py() < LATEST_S


def check_plausible_times(column: pa.ChunkedArray, source_type: pa.DataType, where: Where) -> None:
    if plausible_times(column):
        return
    seconds = column.cast(pa.int64()).to_numpy()
    row = int(np.flatnonzero((seconds < EARLIEST_S) | (seconds >= LATEST_S))[0])
    hint = ""
    if pa.types.is_integer(source_type) or is_text(source_type):
        factors = {"ms": 10**3, "us": 10**6, "ns": 10**9}
        unit = next((u for u, f in factors.items() if EARLIEST_S <= seconds[row] // f < LATEST_S), None)
        hint = " (integer timestamps are seconds since the epoch"
        if unit:
            hint += f"; this one reads as epoch {unit}: divide by {factors[unit]:,} or store a timestamp[{unit}] column"
        hint += ")"
    raise where.error("timestamp", row, f"{int(seconds[row])} s is outside 1900-01-01..2199-12-31 UTC{hint}")


def to_float(column: pa.ChunkedArray, name: str, where: Where) -> np.ndarray:
    kind = column.type
    if is_text(kind):
        column = cast_strings(column, pa.float64(), name, where, "a number")
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind):
        column = pc.cast(column, pa.float64())
    else:
        raise TelemetryError(f"{where.source}: column {name!r} has type {kind}; expected numbers")
    # Nulls become NaN here: the caller decides whether a null is missing data or an error.
    return np.asarray(one_array(column).to_numpy(zero_copy_only=False), dtype=np.float64)


def to_sensor(column: pa.ChunkedArray, name: str, where: Where) -> tuple[pa.ChunkedArray, int]:
    values = to_float(column, name, where)
    missing = ~(np.abs(values) <= SENSOR_LIMIT)  # NaN, +-inf and absurd values, as the kernel (kernels/state.py)
    if missing.any():
        values = np.where(missing, np.nan, values)
    return pa.chunked_array([pa.array(values, pa.float64())]), int(missing.sum())


def to_label_float(column: pa.ChunkedArray, name: str, where: Where) -> pa.ChunkedArray:
    require_no_nulls(column, name, where)
    values = to_float(column, name, where)
    if name == "downtime_risk":
        bad = ~((values >= 0.0) & (values <= 1.0))
        rule = "must be a probability in [0, 1]"
    else:  # predicted_remaining_life, hours
        bad = ~(np.isfinite(values) & (values >= 0.0))
        rule = "must be a finite number of hours >= 0"
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise where.error(name, index, f"{float(values[index])!r} {rule}")
    return pa.chunked_array([pa.array(values, pa.float64())])


def to_int(column: pa.ChunkedArray, name: str, to: pa.DataType, where: Where) -> pa.ChunkedArray:
    require_no_nulls(column, name, where)
    kind = column.type
    if is_text(kind):
        values = cast_strings(column, pa.int64(), name, where, "an integer").to_numpy()
    elif pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        values = one_array(pc.cast(column, pa.int64())).to_numpy()
    elif pa.types.is_floating(kind):
        floats = one_array(column).to_numpy(zero_copy_only=False)
        whole = np.isfinite(floats) & (floats == np.round(floats)) & (np.abs(floats) < 2.0**63)
        if not whole.all():
            index = int(np.flatnonzero(~whole)[0])
            raise where.error(name, index, f"{float(floats[index])!r} is not an integer")
        values = floats.astype(np.int64)
    else:
        raise TelemetryError(f"{where.source}: column {name!r} has type {kind}; expected integers")
    domain = INT_DOMAINS[name]
    if domain is not None:
        bad = ~np.isin(values, domain)
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            allowed = f"{min(domain)}..{max(domain)}" if len(domain) > 2 else " or ".join(map(str, domain))
            raise where.error(name, index, f"{int(values[index])} is outside {allowed}")
    return pa.chunked_array([pa.array(values.astype(to.to_pandas_dtype()), to)])


def to_failure_type(column: pa.ChunkedArray, where: Where) -> pa.ChunkedArray:
    name = "failure_type"
    require_no_nulls(column, name, where)
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, pa.string())
    if not is_text(column.type):
        raise TelemetryError(f"{where.source}: column 'failure_type' has type {column.type}; expected text")
    text = one_array(column)
    codes = pc.index_in(text, value_set=pa.array(FAILURE_TYPES))
    if codes.null_count:
        index = first_null(codes)
        raise where.error(
            name,
            index,
            f"unknown failure type {text[index].as_py()!r}; expected one of {', '.join(FAILURE_TYPES)}",
        )
    dictionary = pa.DictionaryArray.from_arrays(pc.cast(codes, pa.int8()), pa.array(FAILURE_TYPES))
    return pa.chunked_array([dictionary])
