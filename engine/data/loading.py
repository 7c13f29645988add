"""Loading telemetry with validation into the canonical table (:mod:`engine.data.schema`), and saving it.

Every stage of the engine reads telemetry through :func:`load_telemetry`, which turns a Kaggle-format CSV,
a Parquet or Arrow IPC file, a :class:`pyarrow.Table` or a pandas DataFrame into one table in
:data:`TELEMETRY_SCHEMA`. Parsing is pyarrow's; this module only decides types, checks values and, when a
value is bad, finds the first bad row so the error can name it.

Missing sensor values are not errors (../shared/spec/features.md, "Bad samples"): empty, NaN or infinite
sensor readings, and readings beyond +-1e9 (``kernels.state.SENSOR_LIMIT``: no physical reading of these sensors),
are kept as NaN and counted in the :class:`LoadReport`.

Examples
--------
>>> import pyarrow as pa
>>> table = load_telemetry(pa.table({
...     "timestamp": ["2025-01-01 00:00:00", "2025-01-01 00:01:00"],
...     "machine_id": [7, 7],
...     "temperature": [70.5, None], "vibration": [50.0, 51.0], "humidity": [40.0, 41.0],
...     "pressure": [3.0, 3.1], "energy_consumption": [2.0, float("inf")],
...     "machine_status": [1, 1],
... }))
>>> table.schema.field("timestamp").type
TimestampType(timestamp[s, tz=UTC])
>>> table.column("temperature").to_pylist()
[70.5, nan]
>>> telemetry_report(table).missing
{'temperature': 1, 'vibration': 0, 'humidity': 0, 'pressure': 0, 'energy_consumption': 1}
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as paipc
import pyarrow.parquet as pq

from engine.data.columns import (
    Where,
    clean_text,
    plausible_times,
    to_failure_type,
    to_int,
    to_label_float,
    to_sensor,
    to_timestamp,
)
from engine.data.schema import FAILURE_TYPES, INT_DOMAINS, LABEL_COLUMNS, REQUIRED_COLUMNS, SENSORS, TELEMETRY_SCHEMA
from engine.errors import TelemetryError
from kernels.checks import all_within, any_beyond
from kernels.state import SENSOR_LIMIT

__all__ = [
    "LoadReport",
    "load_telemetry",
    "load_telemetry_with_report",
    "save_telemetry",
    "telemetry_report",
    "write_kaggle_csv",
]


@dataclass
class LoadReport:
    """What :func:`load_telemetry_with_report` found while loading.

    Attributes
    ----------
    source : str
        The file path, or a description of the in-memory source.
    rows : int
        Rows loaded.
    missing : dict of str to int
        Per sensor, values that are missing (empty, null, NaN, infinite or beyond +-1e9), kept as NaN.
    labels : tuple of str
        The optional label columns present.
    ignored_columns : tuple of str
        Columns of the input that are not part of the schema and were dropped.
    """

    source: str
    rows: int
    missing: dict[str, int] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    ignored_columns: tuple[str, ...] = ()

    def __str__(self) -> str:
        missing = ", ".join(f"{k}={v}" for k, v in self.missing.items() if v) or "none"
        text = f"{self.source}: {self.rows:,} rows; missing sensor values: {missing}"
        text += f"; labels: {', '.join(self.labels) or 'none'}"
        if self.ignored_columns:
            text += f"; ignored columns: {', '.join(self.ignored_columns)}"
        return text


Source = Any  # str | os.PathLike | pa.Table | pandas.DataFrame


def load_telemetry(source: Source) -> pa.Table:
    """Load telemetry into a table in :data:`TELEMETRY_SCHEMA`.

    Parameters
    ----------
    source : str, path-like, pyarrow.Table or pandas.DataFrame
        A CSV file as downloaded from Kaggle (optionally compressed, e.g. ``.csv.gz``), a Parquet file, an
        Arrow IPC file or stream, or an in-memory table.

    Returns
    -------
    pyarrow.Table
        The required columns and whichever label columns the source has, in schema order, in the source's
        row order. Timestamps without a zone are taken as UTC; timestamps with a zone are converted to UTC;
        sub-second parts are floored to the second; integers (and text of integers) are seconds since the
        epoch. Every timestamp must lie within 1900-01-01..2199-12-31 UTC.

    Raises
    ------
    TelemetryError
        Missing required column, unparsable timestamp or number, a null in a column that may not have one,
        ``machine_status`` outside 0..2, a flag outside 0/1, an unknown ``failure_type``, a label out of
        range, an empty file. The message names the source, the column and the first bad row (0-based;
        CSV errors also give the line number in the file).
    """
    raw, name, is_csv = _read_raw(source)
    return _with_schema_fields(raw) if already_canonical(raw) else _convert(raw, name, is_csv)[0]


def load_telemetry_with_report(source: Source) -> tuple[pa.Table, LoadReport]:
    """Like :func:`load_telemetry`, and also return the :class:`LoadReport`."""
    raw, name, is_csv = _read_raw(source)
    if already_canonical(raw):
        return _with_schema_fields(raw), telemetry_report(raw, name)
    return _convert(raw, name, is_csv)


def _with_schema_fields(table: pa.Table) -> pa.Table:
    """The same columns (no copy) under the schema's own fields (their nullability, no metadata)."""
    schema = pa.schema([TELEMETRY_SCHEMA.field(name) for name in table.column_names])
    return table if table.schema.equals(schema) else pa.Table.from_arrays(table.columns, schema=schema)


def already_canonical(table: pa.Table) -> bool:
    """True when ``table`` already holds what :func:`load_telemetry` would return for it, so its columns are
    returned as they are.

    Every check is on types, null counts, or one vectorized pass over a column: no copy, a few milliseconds for
    a million rows. Any other table takes the converting path, whose errors name the column and row.
    """
    names = table.column_names
    if table.num_rows == 0 or any(c not in names for c in REQUIRED_COLUMNS):
        return False
    if names != [c for c in TELEMETRY_SCHEMA.names if c in names]:  # unknown, duplicated or reordered columns
        return False
    for name in names:
        column = table.column(name)
        if column.type != TELEMETRY_SCHEMA.field(name).type or column.null_count:
            return False
    if not plausible_times(table.column("timestamp")):  # the converting path names the row
        return False
    for name in SENSORS:  # the converting path turns infinities and absurd values into NaN
        if any(any_beyond(v, SENSOR_LIMIT) for v in _chunk_arrays(table.column(name))):
            return False
    return all(_values_in_domain(table.column(name), name) for name in names)


def _values_in_domain(column: pa.ChunkedArray, name: str) -> bool:
    if name in INT_DOMAINS and INT_DOMAINS[name] is not None:
        domain = INT_DOMAINS[name]
        if tuple(domain) != tuple(range(min(domain), max(domain) + 1)):  # only a range is checked by min and max
            return False
        low, high = pc.min_max(column).values()
        return min(domain) <= low.as_py() and high.as_py() <= max(domain)
    if name == "failure_type":
        known = pa.array(FAILURE_TYPES)
        return all(chunk.dictionary.equals(known) for chunk in column.chunks) and all(
            0 <= pc.min(chunk.indices).as_py() and pc.max(chunk.indices).as_py() < len(FAILURE_TYPES)
            for chunk in column.chunks
            if len(chunk)
        )
    if name == "downtime_risk":
        return all(all_within(v, 0.0, 1.0) for v in _chunk_arrays(column))
    if name == "predicted_remaining_life":
        return all(all_within(v, 0.0, np.finfo(np.float64).max) for v in _chunk_arrays(column))
    return True


def _chunk_arrays(column: pa.ChunkedArray) -> list[np.ndarray]:
    return [chunk.to_numpy(zero_copy_only=True) for chunk in column.chunks]


def _convert(raw: pa.Table, name: str, is_csv: bool) -> tuple[pa.Table, LoadReport]:
    where = Where(name, is_csv)
    if raw.num_rows == 0:
        raise TelemetryError(f"{name}: no data rows")
    missing_columns = [c for c in REQUIRED_COLUMNS if c not in raw.column_names]
    if missing_columns:
        raise TelemetryError(
            f"{name}: missing required column(s) {', '.join(repr(c) for c in missing_columns)}; "
            f"found {', '.join(repr(c) for c in raw.column_names)}"
        )
    duplicated = sorted({c for c in raw.column_names if raw.column_names.count(c) > 1})
    if duplicated:
        raise TelemetryError(f"{name}: column(s) {', '.join(map(repr, duplicated))} appear more than once")

    columns: dict[str, pa.ChunkedArray] = {}
    missing: dict[str, int] = {}
    for schema_field in TELEMETRY_SCHEMA:
        name_ = schema_field.name
        if name_ not in raw.column_names:
            continue
        column = clean_text(raw.column(name_))
        if name_ == "timestamp":
            columns[name_] = to_timestamp(column, where)
        elif name_ in SENSORS:
            columns[name_], missing[name_] = to_sensor(column, name_, where)
        elif name_ == "failure_type":
            columns[name_] = to_failure_type(column, where)
        elif schema_field.type == pa.float64():
            columns[name_] = to_label_float(column, name_, where)
        else:
            columns[name_] = to_int(column, name_, schema_field.type, where)

    schema = pa.schema([TELEMETRY_SCHEMA.field(c) for c in columns])
    table = pa.Table.from_arrays([columns[c].combine_chunks() for c in columns], schema=schema)
    known = set(TELEMETRY_SCHEMA.names)
    report = LoadReport(
        source=name,
        rows=table.num_rows,
        missing=missing,
        labels=tuple(c for c in LABEL_COLUMNS if c in columns),
        ignored_columns=tuple(c for c in raw.column_names if c not in known),
    )
    return table, report


def telemetry_report(table: pa.Table, source: str = "<table>") -> LoadReport:
    """Count the missing sensor values and label columns of an already loaded table."""
    missing = {}
    for name in SENSORS:
        missing[name] = sum(int(np.count_nonzero(~np.isfinite(v))) for v in _chunk_arrays(table.column(name)))
    return LoadReport(
        source=source,
        rows=table.num_rows,
        missing=missing,
        labels=tuple(c for c in LABEL_COLUMNS if c in table.column_names),
    )


def save_telemetry(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write a telemetry table to Parquet (zstd) after checking it against the schema.

    The table is validated by :func:`load_telemetry` first, so a saved file always loads back to the same
    table.
    """
    table = load_telemetry(table)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")
    return path


def write_kaggle_csv(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write a telemetry table as CSV in the Kaggle file's format (``YYYY-MM-DD HH:MM:SS`` UTC timestamps,
    failure types as text, missing sensor values as empty cells)."""
    table = load_telemetry(table)
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        if name == "timestamp":
            column = pc.strftime(column, format="%Y-%m-%d %H:%M:%S")
        elif name == "failure_type":
            column = pc.cast(column, pa.string())
        elif name in SENSORS:
            column = pc.if_else(pc.is_nan(column), pa.scalar(None, pa.float64()), column)
        columns[name] = column
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # pyarrow quotes header names whatever the quoting style; the Kaggle file does not.
    with open(path, "wb") as f:
        f.write((",".join(columns) + "\n").encode())
        pacsv.write_csv(pa.table(columns), f, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return path


# ----------------------------------------------------------------------------------------------------
# reading


def _read_raw(source: Source) -> tuple[pa.Table, str, bool]:
    if isinstance(source, pa.Table):
        return source, "<pyarrow.Table>", False
    if isinstance(source, pa.RecordBatch):
        return pa.Table.from_batches([source]), "<pyarrow.RecordBatch>", False
    if type(source).__name__ == "DataFrame" and hasattr(source, "to_numpy"):
        try:
            return pa.Table.from_pandas(source, preserve_index=False), "<pandas.DataFrame>", False
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise TelemetryError(f"<pandas.DataFrame>: cannot convert to Arrow: {exc}") from exc
    if not isinstance(source, (str, os.PathLike)):
        raise TelemetryError(f"cannot load telemetry from {type(source).__name__}; give a path, a table or a DataFrame")

    path = Path(source)
    name = str(path)
    if not path.is_file():
        raise TelemetryError(f"{name}: no such file")
    if path.stat().st_size == 0:
        raise TelemetryError(f"{name}: empty file")
    with open(path, "rb") as f:
        head = f.read(8)
    try:
        if head[:4] == b"PAR1":
            return pq.read_table(path), name, False
        if head[:6] == b"ARROW1":
            with paipc.open_file(path) as reader:
                return reader.read_all(), name, False
        if head[:4] == b"\xff\xff\xff\xff":
            with paipc.open_stream(path) as reader:
                return reader.read_all(), name, False
    except (pa.ArrowInvalid, OSError) as exc:
        raise TelemetryError(f"{name}: cannot read: {exc}") from exc
    return _read_csv(path), name, True


def _read_csv(path: Path) -> pa.Table:
    name = str(path)
    try:
        with pacsv.open_csv(path) as reader:
            header = reader.schema.names
    except pa.ArrowInvalid as exc:
        raise TelemetryError(f"{name}: cannot read as CSV: {exc}") from exc
    # Fast path: pyarrow parses each known column straight into its type, on all cores. If any value does not
    # parse, read everything as text instead, so that the column conversion below can name the first bad row
    # (pyarrow's own conversion errors carry no row number).
    typed = {c: _CSV_TYPES.get(c, pa.string()) for c in header}
    try:
        return pacsv.read_csv(path, convert_options=_csv_convert_options(typed))
    except pa.ArrowInvalid:
        pass
    try:
        return pacsv.read_csv(path, convert_options=_csv_convert_options(dict.fromkeys(header, pa.string())))
    except pa.ArrowInvalid as exc:
        raise TelemetryError(f"{name}: cannot read as CSV: {exc}") from exc


_CSV_TYPES: dict[str, pa.DataType] = {
    "timestamp": pa.timestamp("s"),
    "machine_id": pa.int64(),
    **dict.fromkeys(SENSORS, pa.float64()),
    "machine_status": pa.int64(),
    "anomaly_flag": pa.int64(),
    "predicted_remaining_life": pa.float64(),
    "failure_type": pa.string(),
    "downtime_risk": pa.float64(),
    "maintenance_required": pa.int64(),
}


def _csv_convert_options(column_types: dict[str, pa.DataType]) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(
        column_types=column_types,
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        timestamp_parsers=["%Y-%m-%d %H:%M:%S", pacsv.ISO8601],
    )
