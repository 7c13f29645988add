"""Streaming features (:class:`FeatureStream`): one sample at a time, any number of machines, O(1) per sample;
the same kernel and state as the batch path (:mod:`engine.features.batch`), so the same bits."""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass

import numpy as np

from engine.data.schema import SENSORS
from engine.errors import InvalidInputError, LateSampleError
from engine.features.inputs import (
    TIMESTAMP_LIMIT,
    integer_array,
    machine_id_value,
    offset_seconds,
    sample_error,
    timestamp_array,
    timestamp_value,
)
from engine.features.snapshot import read_snapshot, snapshot_bytes
from kernels.history import N_HISTORY, replay_history
from kernels.names import N_FEATURES
from kernels.state import I_COUNT, I_LAST_TS, I_SAMPLES, N_SENSORS, allocate
from kernels.step import LATE, drive, step_one_direct

__all__ = ["FeatureStream", "StreamStats"]


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
        self._offset_s = offset_seconds(self.utc_offset_minutes)
        self._step_one = _step_one()
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
            # an array row unpacks into five numpy scalars, four times slower than its list
            t, v, h, p, e = sensors.tolist() if type(sensors) is np.ndarray else sensors
            timestamp = operator.index(timestamp_s)
            t, v, h, p, e = float(t), float(v), float(h), float(p), float(e)
        except (TypeError, ValueError) as exc:
            raise sample_error(machine_id, timestamp_s, sensors) from exc
        if not -TIMESTAMP_LIMIT <= timestamp <= TIMESTAMP_LIMIT:
            timestamp_value(timestamp, machine_id)  # raises the error every path gives
        slot = self._slot_of.get(machine_id)
        if slot is None:  # only once the sample is known to be valid: a bad one leaves no trace
            slot = self._add_machine(machine_id)
        row = np.empty(N_FEATURES)
        status = self._step_one(self._fstate, self._istate, slot, timestamp, t, v, h, p, e, self._offset_s, row)
        if status == LATE:
            self._late += 1
            raise LateSampleError(
                f"machine {machine_id}: timestamp {timestamp_s} is earlier than the last accepted "
                f"{self._istate[slot, I_LAST_TS]}"
            )
        return row

    def update_batch(self, machine_ids, timestamps_s, sensors, *, history: np.ndarray | None = None) -> np.ndarray:
        """Apply a micro-batch of samples in arrival order and return their features.

        Parameters
        ----------
        machine_ids : array-like of int, shape (n,)
        timestamps_s : array-like of int or datetime64, shape (n,)
        sensors : array-like of float, shape (n, 5)
        history : ndarray of shape (n, 10), optional
            Filled with each sample's sensor history before it (:mod:`kernels.history`: the unsupervised
            detector's inputs); NaN for a late sample.

        Returns
        -------
        ndarray of shape (n, 67)
            A late sample gets a row of NaN, is not applied, and is listed in :attr:`last_late`.
        """
        ids = integer_array(machine_ids, "machine_ids")
        timestamps = timestamp_array(timestamps_s)
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
        if history is not None:
            if not isinstance(history, np.ndarray) or history.shape != (n, N_HISTORY) or history.dtype != np.float64:
                raise InvalidInputError(f"history must be a float64 array of shape ({n}, {N_HISTORY})")
            # the states before the batch, to replay their Welford statistics once lateness is known
            before = (self._fstate[unique_slots].copy(), self._istate[unique_slots].copy())
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
        if history is not None:
            accepted = status != LATE
            replay_history(*before, np.arange(n, dtype=np.int64), inverse.reshape(-1), values, accepted, history)
            history[~accepted] = np.nan
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

    def last_timestamp(self, machine_id) -> int:
        """The timestamp of the machine's last accepted sample (KeyError for a machine never seen)."""
        return int(self._istate[self._slot_of[machine_id], I_LAST_TS])

    def state_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the float and int state of every machine seen, in order of first appearance."""
        used = len(self._machine_ids)
        return self._fstate[:used].copy(), self._istate[:used].copy()

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
        machine_id = machine_id_value(machine_id)
        slot = len(self._machine_ids)
        if slot == self._fstate.shape[0]:
            fstate, istate = allocate(2 * slot)
            fstate[:slot] = self._fstate
            istate[:slot] = self._istate
            self._fstate, self._istate = fstate, istate
        self._machine_ids.append(machine_id)
        self._slot_of[machine_id] = slot
        return slot


@functools.cache
def _step_one():
    return step_one_direct()
