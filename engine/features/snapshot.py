"""The per-machine feature state as Arrow IPC bytes: what :meth:`FeatureStream.snapshot` writes and
:meth:`FeatureStream.restore` (and the stream scorer) read.

A snapshot carries the SHA-256 of its contents (machine ids, both state arrays and its metadata) in its schema
metadata, and :func:`read_snapshot` refuses one whose digest does not match or whose states no sequence of samples
can reach (a negative count, a count above the samples, a timestamp beyond the limit): a flipped bit or a crafted
file is an error, never a different state, and never an index outside a state's ring in the C library.
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pyarrow as pa

from compile.errors import InvalidInputError
from engine.features.inputs import MAX_UTC_OFFSET_MINUTES, TIMESTAMP_LIMIT
from kernels.state import I_COUNT, I_LAST_TS, I_SAMPLES, N_SENSORS, state_column_names

__all__ = ["SNAPSHOT_FORMAT", "check_states", "read_snapshot", "snapshot_bytes"]

SNAPSHOT_FORMAT = "iotengine.feature_state/2"  # 2: with the SHA-256 of the contents


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
    ids = columns["machine_id"].to_numpy()
    meta["sha256"] = _digest(meta, ids, np.asarray(fstate, dtype=np.float64), np.asarray(istate, dtype=np.int64))
    table = pa.table(columns).replace_schema_metadata({"iotengine": json.dumps(meta)})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def read_snapshot(data: bytes) -> tuple[list[int], np.ndarray, np.ndarray, dict]:
    """Machine ids, float state, int state and metadata of :func:`snapshot_bytes` output.

    Raises
    ------
    InvalidInputError
        Not bytes, not a snapshot (truncated, another format or version), a digest that does not match, or a state
        that is not reachable (:func:`check_states`).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidInputError(f"a snapshot is the bytes snapshot() returned, not {type(data).__name__}")
    try:
        with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
            table = reader.read_all()
        meta = json.loads((table.schema.metadata or {})[b"iotengine"])
    except (pa.ArrowException, OSError, KeyError, ValueError, TypeError) as exc:
        raise InvalidInputError(f"not a FeatureStream snapshot (truncated or damaged?): {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != SNAPSHOT_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else meta
        raise InvalidInputError(f"snapshot format {found!r} is not {SNAPSHOT_FORMAT!r}")
    fnames, inames = state_column_names()
    try:
        same_schema = table.schema.remove_metadata().equals(_schema(fnames, inames))
    except UnicodeDecodeError:  # a damaged column name
        same_schema = False
    if not same_schema or any(column.null_count for column in table.columns):
        raise InvalidInputError("snapshot columns do not match this version's feature state")
    try:
        ids = table.column("machine_id").to_numpy(zero_copy_only=False)
        fstate = np.column_stack([table.column(name).to_numpy(zero_copy_only=False) for name in fnames])
        istate = np.column_stack([table.column(name).to_numpy(zero_copy_only=False) for name in inames])
        fstate = fstate.reshape(len(ids), len(fnames))
        istate = istate.reshape(len(ids), len(inames))
        expected = _digest({k: v for k, v in meta.items() if k != "sha256"}, ids, fstate, istate)
        offset, late = int(meta["utc_offset_minutes"]), int(meta["late"])
    except (pa.ArrowException, KeyError, ValueError, TypeError) as exc:
        raise InvalidInputError(f"not a FeatureStream snapshot: {exc}") from exc
    if meta.get("sha256") != expected:
        raise InvalidInputError("the snapshot's SHA-256 does not match its contents: it was damaged or edited")
    if len(set(ids.tolist())) != len(ids):
        raise InvalidInputError("snapshot lists a machine twice")
    if late < 0 or not -MAX_UTC_OFFSET_MINUTES <= offset <= MAX_UTC_OFFSET_MINUTES:
        raise InvalidInputError(f"snapshot metadata is impossible: late {late}, UTC offset {offset} min")
    check_states(ids, istate)
    return [int(m) for m in ids], fstate, istate, meta


def check_states(machine_ids, istate: np.ndarray) -> None:
    """Refuse int states that no sequence of samples can reach: a count below 0 or above the machine's samples,
    or a last timestamp beyond +-TIMESTAMP_LIMIT; the error names the machine and the field."""
    samples = istate[:, I_SAMPLES]
    counts = istate[:, I_COUNT : I_COUNT + N_SENSORS]
    last = istate[:, I_LAST_TS]
    bad = (
        (samples < 0)
        | (samples >= TIMESTAMP_LIMIT)  # far beyond any history; keeps samples + 1 inside int64
        | np.any(counts < 0, axis=1)
        | np.any(counts > samples[:, None], axis=1)
        | ((samples > 0) & ((last < -TIMESTAMP_LIMIT) | (last > TIMESTAMP_LIMIT)))
    )
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            f"machine {int(machine_ids[row])}: impossible state (samples {int(samples[row])}, counts "
            f"{counts[row].tolist()}, last timestamp {int(last[row])}); nothing was restored"
        )


def _schema(fnames, inames) -> pa.Schema:
    fields = [pa.field("machine_id", pa.int64())]
    fields += [pa.field(name, pa.float64()) for name in fnames] + [pa.field(name, pa.int64()) for name in inames]
    return pa.schema(fields)


def _digest(meta: dict, ids: np.ndarray, fstate: np.ndarray, istate: np.ndarray) -> str:
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for array in (ids.astype("<i8"), fstate.astype("<f8"), istate.astype("<i8")):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()
