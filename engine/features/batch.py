"""The 67 features of ../shared/spec/features.md, in batch over tables and one sample at a time.

Both paths run the same Numba kernel (:func:`kernels.step.step`) over the same per-machine state, so for the
same samples they give the same bits:

- :func:`compute_features` (batch): orders each machine's samples by timestamp (stably, so equal timestamps
  keep their input order), runs the kernel, and returns rows in the input order.
- :class:`FeatureStream` (streaming): samples in arrival order; a sample older than its machine's last
  accepted one is late and is rejected, never applied.
- :class:`FeatureTransformer`: the batch path as a scikit-learn transformer.

Examples
--------
>>> stream = FeatureStream()
>>> row = stream.update(7, 1_735_689_600, [70.0, 50.0, 40.0, 3.0, 2.0])
>>> FEATURE_NAMES[25], float(row[25]), FEATURE_NAMES[20], float(row[20])
('temp_roll_mean_5', 70.0, 'temp_zscore_machine', 0.0)
>>> row = stream.update(7, 1_735_689_660, [72.0, float("nan"), 40.0, 3.0, 2.0])
>>> row[[25, 40, 1, 28]].tolist()   # temp roll mean, temp diff, vibration (missing), vib roll mean (state)
[71.0, 2.0, nan, 50.0]
>>> stream.update(7, 1_735_689_000, [70.0, 50.0, 40.0, 3.0, 2.0])
Traceback (most recent call last):
    ...
engine.features.batch.LateSampleError: machine 7: timestamp 1735689000 is earlier than the last accepted 1735689660
>>> stream.stats.accepted, stream.stats.late, stream.stats.missing["vibration"]
(2, 1, 1)
"""

from __future__ import annotations

import io
import json
import operator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from sklearn.base import BaseEstimator, TransformerMixin

from engine.data.loading import SENSORS, load_telemetry
from engine.errors import InvalidInputError, LateSampleError
from kernels.names import FEATURE_NAMES, N_FEATURES
from kernels.state import I_COUNT, I_LAST_TS, I_SAMPLES, N_SENSORS, allocate, state_column_names
from kernels.step import LATE, drive, step_one

__all__ = [
    "FEATURE_NAMES",
    "FeatureStream",
    "FeatureTransformer",
    "LateSampleError",
    "StreamStats",
    "compute_features",
    "features_table",
    "read_snapshot",
    "snapshot_bytes",
]

SNAPSHOT_FORMAT = "iotengine.feature_state/1"


def compute_features(table, *, utc_offset_minutes: int = 0) -> np.ndarray:
    """The 67 features of every row of a telemetry table (the batch path).

    Parameters
    ----------
    table : pyarrow.Table, pandas.DataFrame or path
        Telemetry, loaded and validated by :func:`engine.data.loading.load_telemetry`.
    utc_offset_minutes : int, default=0
        Fixed offset of the local time used by the hour and day features.

    Returns
    -------
    ndarray of shape (n_rows, 67), float64
        Row ``i`` holds the features of input row ``i``; columns follow :data:`FEATURE_NAMES`.

    Examples
    --------
    >>> from engine.data.synthetic import generate
    >>> X = compute_features(generate(1_000, seed=0))
    >>> X.shape, X.dtype
    ((1000, 67), dtype('float64'))
    """
    return _features_of_valid_table(load_telemetry(table), utc_offset_minutes)


def _features_of_valid_table(table: pa.Table, utc_offset_minutes: int) -> np.ndarray:
    machine_ids, timestamps, sensors = _columns(table)
    offset_s = _offset_seconds(utc_offset_minutes)
    _, slots = np.unique(machine_ids, return_inverse=True)
    slots = slots.astype(np.int64)
    # By machine, then by time; np.lexsort is stable, so equal timestamps keep the input order.
    order = np.lexsort((timestamps, slots)).astype(np.int64)
    fstate, istate = allocate(int(slots.max()) + 1 if slots.size else 0)
    out = np.empty((table.num_rows, N_FEATURES))
    status = np.zeros(table.num_rows, dtype=np.int8)
    drive(fstate, istate, order, slots, timestamps, sensors, offset_s, out, status)
    assert not status.any(), "sorted samples cannot be late"
    return out


def features_table(table, *, utc_offset_minutes: int = 0) -> pa.Table:
    """Telemetry identifiers and labels with the 67 features as columns (what ``iotengine features`` writes)."""
    table = load_telemetry(table)
    features = _features_of_valid_table(table, utc_offset_minutes)
    keep = ["timestamp", "machine_id", "machine_status"]
    keep += [c for c in table.column_names if c not in keep and c not in SENSORS]
    columns = {name: table.column(name) for name in keep}
    for j, name in enumerate(FEATURE_NAMES):
        columns[name] = pa.array(features[:, j])
    return pa.table(columns)


@dataclass(frozen=True)
class StreamStats:
    """Counts of a :class:`FeatureStream`: samples applied, samples rejected as late, missing values per sensor."""

    accepted: int
    late: int
    missing: dict[str, int]
    machines: int


class FeatureStream:
    """Streaming features: one sample at a time, any number of machines, O(1) per sample.

    Parameters
    ----------
    utc_offset_minutes : int, default=0
        Fixed offset of the local time used by the hour and day features.
    capacity : int, default=64
        Machine slots allocated up front; the state grows (doubling) as new machines appear.

    Attributes
    ----------
    last_late : ndarray of int
        Row indices of the samples :meth:`update_batch` rejected as late in its last call.
    """

    def __init__(self, *, utc_offset_minutes: int = 0, capacity: int = 64):
        self.utc_offset_minutes = int(utc_offset_minutes)
        self._offset_s = _offset_seconds(self.utc_offset_minutes)
        self._slot_of: dict[int, int] = {}
        self._machine_ids: list[int] = []
        self._fstate, self._istate = allocate(max(1, int(capacity)))
        self._late = 0
        self.last_late = np.empty(0, dtype=np.int64)

    # ------------------------------------------------------------------------------------------------------

    def update(self, machine_id, timestamp_s, sensors) -> np.ndarray:
        """Apply one sample and return its 67 features.

        Parameters
        ----------
        machine_id : int
        timestamp_s : int
            Seconds since the epoch, UTC.
        sensors : sequence of 5 floats
            temperature, vibration, humidity, pressure, energy_consumption; NaN or infinite = missing.

        Returns
        -------
        ndarray of shape (67,)

        Raises
        ------
        LateSampleError
            The timestamp is earlier than the machine's last accepted sample; nothing is changed.
        """
        try:
            t, v, h, p, e = sensors
            timestamp = operator.index(timestamp_s)
            t, v, h, p, e = float(t), float(v), float(h), float(p), float(e)
        except (TypeError, ValueError) as exc:
            raise _sample_error(machine_id, timestamp_s, sensors) from exc
        slot = self._slot_of.get(machine_id)
        if slot is None:  # only once the sample is known to be valid: a bad one leaves no trace
            slot = self._add_machine(machine_id)
        row = np.empty(N_FEATURES)
        status = step_one(self._fstate, self._istate, slot, timestamp, t, v, h, p, e, self._offset_s, row)
        if status == LATE:
            self._late += 1
            raise LateSampleError(
                f"machine {machine_id}: timestamp {timestamp_s} is earlier than the last accepted "
                f"{self._istate[slot, I_LAST_TS]}"
            )
        return row

    def update_batch(self, machine_ids, timestamps_s, sensors) -> np.ndarray:
        """Apply a micro-batch of samples in arrival order and return their features.

        Parameters
        ----------
        machine_ids : array-like of int, shape (n,)
        timestamps_s : array-like of int or datetime64, shape (n,)
        sensors : array-like of float, shape (n, 5)

        Returns
        -------
        ndarray of shape (n, 67)
            A late sample gets a row of NaN, is not applied, and is listed in :attr:`last_late`.
        """
        ids = _integer_array(machine_ids, "machine_ids")
        timestamps = _timestamp_array(timestamps_s)
        values = np.ascontiguousarray(sensors, dtype=np.float64)
        n = ids.shape[0]
        if timestamps.shape != (n,) or values.shape != (n, N_SENSORS):
            raise InvalidInputError(
                f"update_batch needs machine_ids (n,), timestamps_s (n,) and sensors (n, {N_SENSORS}); "
                f"got {ids.shape}, {timestamps.shape} and {values.shape}"
            )
        unique, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        unique_slots = np.empty(unique.shape[0], dtype=np.int64)
        for k in np.argsort(first, kind="stable"):  # new machines get slots in order of first appearance
            m = int(unique[k])
            unique_slots[k] = self._slot_of[m] if m in self._slot_of else self._add_machine(m)
        slots = unique_slots[inverse.reshape(-1)]
        out = np.empty((n, N_FEATURES))
        status = np.zeros(n, dtype=np.int8)
        drive(
            self._fstate,
            self._istate,
            np.arange(n, dtype=np.int64),
            slots,
            timestamps,
            values,
            self._offset_s,
            out,
            status,
        )
        self.last_late = np.flatnonzero(status == LATE)
        self._late += int(self.last_late.size)
        return out

    @property
    def stats(self) -> StreamStats:
        """Counts so far (they survive :meth:`snapshot` / :meth:`restore`)."""
        used = len(self._machine_ids)
        samples = self._istate[:used, I_SAMPLES]
        counts = self._istate[:used, I_COUNT : I_COUNT + N_SENSORS]
        missing = {name: int((samples - counts[:, s]).sum()) for s, name in enumerate(SENSORS)}
        return StreamStats(accepted=int(samples.sum()), late=self._late, missing=missing, machines=used)

    @property
    def machines(self) -> tuple[int, ...]:
        """Machine ids seen so far, in order of first appearance."""
        return tuple(self._machine_ids)

    # ------------------------------------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole state as Arrow IPC stream bytes: one row per machine, one column per state field."""
        used = len(self._machine_ids)
        return snapshot_bytes(
            self._machine_ids, self._fstate[:used], self._istate[:used], self.utc_offset_minutes, self._late
        )

    @classmethod
    def restore(cls, data: bytes) -> FeatureStream:
        """A stream that continues exactly where the one that made ``data`` (by :meth:`snapshot`) stopped."""
        ids, fstate, istate, meta = read_snapshot(data)
        stream = cls(utc_offset_minutes=meta["utc_offset_minutes"], capacity=max(1, len(ids)))
        stream._machine_ids = list(ids)
        stream._slot_of = {m: i for i, m in enumerate(ids)}
        stream._fstate[: len(ids)] = fstate
        stream._istate[: len(ids)] = istate
        stream._late = int(meta["late"])
        return stream

    # ------------------------------------------------------------------------------------------------------

    def _add_machine(self, machine_id) -> int:
        machine_id = operator.index(machine_id)
        if not -(2**63) <= machine_id < 2**63:
            raise InvalidInputError(f"machine_id {machine_id} does not fit in int64")
        slot = len(self._machine_ids)
        if slot == self._fstate.shape[0]:
            fstate, istate = allocate(2 * slot)
            fstate[:slot] = self._fstate
            istate[:slot] = self._istate
            self._fstate, self._istate = fstate, istate
        self._machine_ids.append(machine_id)
        self._slot_of[machine_id] = slot
        return slot


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


class FeatureTransformer(TransformerMixin, BaseEstimator):
    """The 67 features as a scikit-learn transformer; ``fit`` learns nothing.

    Parameters
    ----------
    utc_offset_minutes : int, default=0

    Examples
    --------
    >>> from engine.data.synthetic import generate
    >>> transformer = FeatureTransformer().fit(None)
    >>> transformer.transform(generate(10)).shape
    (10, 67)
    >>> transformer.get_feature_names_out()[:2]
    array(['temperature', 'vibration'], dtype=object)
    """

    def __init__(self, utc_offset_minutes: int = 0):
        self.utc_offset_minutes = utc_offset_minutes

    def fit(self, X=None, y=None):
        return self

    def transform(self, X) -> np.ndarray:
        """Features of telemetry ``X`` (a table, DataFrame or path), shape (n_rows, 67)."""
        return compute_features(X, utc_offset_minutes=self.utc_offset_minutes)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(FEATURE_NAMES, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


# ----------------------------------------------------------------------------------------------------------


def _columns(table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    machine_ids = table.column("machine_id").to_numpy().astype(np.int64, copy=False)
    timestamps = table.column("timestamp").cast(pa.int64()).to_numpy()
    sensors = np.empty((table.num_rows, N_SENSORS))
    for s, name in enumerate(SENSORS):
        sensors[:, s] = table.column(name).to_numpy()
    return machine_ids, timestamps, sensors


def _offset_seconds(utc_offset_minutes) -> int:
    minutes = operator.index(utc_offset_minutes)
    if not -24 * 60 < minutes < 24 * 60:
        raise InvalidInputError(f"utc_offset_minutes must be within one day, not {minutes}")
    return 60 * minutes


def _integer_array(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "iu":
        if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
            return array.astype(np.int64).reshape(-1)
        raise InvalidInputError(f"{name} must be integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False).reshape(-1)


def _timestamp_array(values) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind == "M":
        return array.astype("datetime64[s]").astype(np.int64)
    return _integer_array(array, "timestamps_s")


def _sample_error(machine_id, timestamp_s, sensors) -> InvalidInputError:
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
