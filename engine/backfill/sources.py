"""The input of a backfill: telemetry files found under a folder or by a glob, checked before any work, each read by
the same loader as every other command, with its place in the one total order of samples.

The order (both engines, any partitioning): by machine, then timestamp; equal timestamps of a machine by source
file (paths compared as strings, the order :func:`find_inputs` lists them in), then by row within the file. Rows
carry ``file_index`` (the file's place in that list) and ``source_row`` (0-based row of the file) so the order is
a sort on four integer columns.

Folders are searched recursively, so Hive-style partition folders (``date=2025-01-01/part-0.parquet``) are read
as files like any other; every file must hold the required columns itself (a folder name is never a column).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from engine.data.loading import load_telemetry
from engine.data.schema import LABEL_COLUMNS, REQUIRED_COLUMNS, SENSORS
from engine.errors import TelemetryError

__all__ = [
    "ORDER_COLUMNS",
    "SUFFIXES",
    "TRANSPORT_SCHEMA",
    "check_inputs",
    "find_inputs",
    "read_input",
    "transport_schema",
    "transport_table",
]

SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz")
ORDER_COLUMNS = ("machine_id", "timestamp", "file_index", "source_row")

# What a read file becomes between the reader and the kernel (Spark's shuffle carries it): plain integer and float
# columns, timestamps as int64 seconds, the failure type as text.
_LABEL_TYPES = {
    "anomaly_flag": pa.int8(),
    "predicted_remaining_life": pa.float64(),
    "failure_type": pa.string(),
    "downtime_risk": pa.float64(),
    "maintenance_required": pa.int8(),
}
TRANSPORT_SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.int64()),
        pa.field("machine_id", pa.int64()),
        *(pa.field(name, pa.float64()) for name in SENSORS),
        pa.field("machine_status", pa.int8()),
        pa.field("file_index", pa.int32()),
        pa.field("source_row", pa.int64()),
    ]
)


def transport_schema(labels: tuple[str, ...]) -> pa.Schema:
    """:data:`TRANSPORT_SCHEMA` with the label columns ``labels`` (in :data:`LABEL_COLUMNS` order)."""
    schema = TRANSPORT_SCHEMA
    for name in labels:
        schema = schema.insert(schema.get_field_index("file_index"), pa.field(name, _LABEL_TYPES[name]))
    return schema


def find_inputs(source: str | os.PathLike) -> list[str]:
    """The telemetry files of a folder (recursively), a glob or one file, as absolute paths in string order.

    Files and folders whose names start with ``_`` or ``.`` (``_SUCCESS``, ``.crc``) are skipped, as Spark does.
    """
    text = os.fspath(source)
    if glob.has_magic(text):
        candidates = [Path(p) for p in glob.glob(text, recursive=True)]
    elif Path(text).is_dir():
        candidates = [p for p in Path(text).rglob("*") if not _hidden(p.relative_to(text))]
    elif Path(text).is_file():
        candidates = [Path(text)]
    else:
        raise TelemetryError(f"--input {text}: no such file or folder")
    files = sorted(str(p.resolve()) for p in candidates if p.is_file() and p.name.lower().endswith(SUFFIXES))
    if not files:
        raise TelemetryError(f"--input {text}: no telemetry files ({', '.join(SUFFIXES)})")
    return files


def check_inputs(files: list[str]) -> tuple[str, ...]:
    """Open every file's header (CSV) or footer (Parquet) before any work starts; return the label columns that
    every file has. A file that cannot be read or lacks a required column is a TelemetryError naming it."""
    labels = set(LABEL_COLUMNS)
    for path in files:
        names = _column_names(path)
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise TelemetryError(f"{path}: missing required column(s) {', '.join(missing)}")
        labels &= set(names)
    return tuple(c for c in LABEL_COLUMNS if c in labels)


def read_input(path: str, file_index: int, labels: tuple[str, ...]) -> pa.Table:
    """One file in :func:`transport_schema` order and types, its rows in file order (``source_row`` 0, 1, ...)."""
    return transport_table(load_telemetry(path), file_index, labels)


def transport_table(table: pa.Table, file_index: int, labels: tuple[str, ...] = ()) -> pa.Table:
    """A loaded telemetry table (:func:`load_telemetry`) as the rows of file ``file_index``, in the transport schema."""
    columns = [table.column("timestamp").cast(pa.int64()), table.column("machine_id")]
    columns += [table.column(name) for name in (*SENSORS, "machine_status")]
    for name in labels:
        column = table.column(name)
        columns.append(column.cast(pa.string()) if name == "failure_type" else column.cast(_LABEL_TYPES[name]))
    n = table.num_rows
    columns += [pa.array(np.full(n, file_index, dtype=np.int32)), pa.array(np.arange(n, dtype=np.int64))]
    return pa.Table.from_arrays(columns, schema=transport_schema(labels))


def _column_names(path: str) -> list[str]:
    try:
        if path.lower().endswith((".parquet", ".pq")):
            return pq.read_schema(path).names
        with pacsv.open_csv(path) as reader:
            return reader.schema.names
    except (pa.ArrowException, OSError) as exc:
        raise TelemetryError(f"{path}: cannot read: {exc}") from exc


def _hidden(relative: Path) -> bool:
    return any(part.startswith(("_", ".")) for part in relative.parts)
