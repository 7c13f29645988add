"""The per-machine feature state as Arrow IPC bytes: what :meth:`FeatureStream.snapshot` writes and
:meth:`FeatureStream.restore` (and the stream scorer) read."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa

from compile.errors import InvalidInputError
from kernels.state import state_column_names

__all__ = ["SNAPSHOT_FORMAT", "read_snapshot", "snapshot_bytes"]

SNAPSHOT_FORMAT = "iotengine.feature_state/1"


def snapshot_bytes(machine_ids, fstate: np.ndarray, istate: np.ndarray, utc_offset_minutes: int, late: int) -> bytes:
    """Per-machine feature state as Arrow IPC stream bytes (the format of :meth:`FeatureStream.snapshot`).

    One row per machine, one column per field of :mod:`kernels.state`; the edge library's ``iot_state`` has the
    same fields, so :class:`engine.stream.scorer.StreamScorer` writes and reads the same format.
    """
    fnames, inames = state_column_names()
    columns = {"machine_id": pa.array(list(machine_ids), pa.int64())}
    for j, name in enumerate(fnames):
        columns[name] = pa.array(np.ascontiguousarray(fstate[:, j]))
    for j, name in enumerate(inames):
        columns[name] = pa.array(np.ascontiguousarray(istate[:, j]))
    meta = {"format": SNAPSHOT_FORMAT, "utc_offset_minutes": int(utc_offset_minutes), "late": int(late)}
    table = pa.table(columns).replace_schema_metadata({"iotengine": json.dumps(meta)})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def read_snapshot(data: bytes) -> tuple[list[int], np.ndarray, np.ndarray, dict]:
    """Machine ids, float state, int state and metadata of :func:`snapshot_bytes` output; ValueError if not one."""
    try:
        with pa.ipc.open_stream(data) as reader:
            table = reader.read_all()
        meta = json.loads((table.schema.metadata or {})[b"iotengine"])
    except (pa.ArrowInvalid, KeyError, ValueError, TypeError) as exc:
        raise InvalidInputError(f"not a FeatureStream snapshot: {exc}") from exc
    if meta.get("format") != SNAPSHOT_FORMAT:
        raise InvalidInputError(f"snapshot format {meta.get('format')!r} is not {SNAPSHOT_FORMAT!r}")
    fnames, inames = state_column_names()
    if table.column_names != ["machine_id", *fnames, *inames]:
        raise InvalidInputError("snapshot columns do not match this version's feature state")
    ids = [int(m) for m in table.column("machine_id").to_numpy()]
    if len(set(ids)) != len(ids):
        raise InvalidInputError("snapshot lists a machine twice")
    fstate = np.column_stack([table.column(name).to_numpy() for name in fnames]).astype(np.float64)
    istate = np.column_stack([table.column(name).to_numpy() for name in inames]).astype(np.int64)
    return ids, fstate.reshape(len(ids), len(fnames)), istate.reshape(len(ids), len(inames)), meta
