"""Streaming scoring: samples in arrival order, any number of machines, the five tasks per sample.

:class:`StreamScorer` holds one feature state per machine and scores each sample with the bundle's models:

- ``backend="c"`` (default): the bundle's edge library (``iotengine compile`` builds it; compile/edge.py), through
  cffi (:class:`engine.stream.backends.CBackend`): a micro-batch is one C call, so the Python overhead is paid
  per batch, not per sample.
- ``backend="python"``: the reference (:class:`engine.stream.backends.PythonBackend`): the Numba kernel and each
  model's own library.

The scorer validates every sample (so a bad one changes nothing), counts late ones and keeps the snapshot format;
the backends only score.

Both follow the spec's policies: a NaN or infinite sensor is missing; a sample older than its machine's last
accepted one is late, is not applied, and scores NaN (:meth:`StreamScorer.score` raises
:class:`engine.errors.LateSampleError`). :meth:`snapshot` writes the states in the format of
:meth:`engine.features.stream.FeatureStream.snapshot` (the C state has the Numba state's fields), so a stream restored
from it continues with the same scores, on either backend.

Example (a compiled bundle; tests/stream/test_scorer.py runs these calls)::

    scorer = StreamScorer("artifacts/train/bundle")
    scores = scorer.score(7, 1_735_689_600, [70.0, 50.0, 40.0, 3.0, 2.0], 1)
    scores["anomaly_flag"], scores["failure_type"]      # (0.0123..., 'Normal')
"""

from __future__ import annotations

import operator

import numpy as np

from engine.bundle.format import Bundle
from engine.data.schema import SENSORS
from engine.errors import InvalidInputError, LateSampleError
from engine.features.inputs import integer_array, machine_id_value, timestamp_array, timestamp_value
from engine.features.snapshot import read_snapshot, snapshot_bytes
from engine.features.stream import StreamStats
from engine.stream.backends import CBackend, PythonBackend
from kernels.state import N_SENSORS

__all__ = ["BACKENDS", "StreamScorer"]

BACKENDS = {"c": CBackend, "python": PythonBackend}
NO_ROWS = np.empty(0, dtype=np.int64)
NO_ROWS.flags.writeable = False  # shared by every call that has no late row


class StreamScorer:
    """Per-machine streaming features and the five task scores, through the C library or the Python reference.

    Parameters
    ----------
    bundle : Bundle or path
        A compiled bundle (``iotengine compile``) for ``backend="c"``; any bundle for ``"python"``.
    backend : {"c", "python"}
    capacity : int
        Machine states allocated up front; the buffer doubles as new machines appear.

    Attributes
    ----------
    models : str
        The bundle's model set that scores (the one the edge library was built from).
    utc_offset_minutes : int
        The bundle's: the offset its models were trained with.
    last_late : ndarray of int
        Rows that :meth:`score_batch` rejected as late in its last call.
    """

    def __init__(self, bundle, *, backend: str = "c", capacity: int = 64):
        if backend not in BACKENDS:
            raise InvalidInputError(f"backend must be one of {tuple(BACKENDS)}, not {backend!r}")
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        self.backend = backend
        self.utc_offset_minutes = self.bundle.utc_offset_minutes
        edge = self.bundle.edge
        self.models = edge.models if edge is not None else "chosen"
        self._engine = BACKENDS[backend](self.bundle, self.models, self.utc_offset_minutes, capacity)
        self._late = 0
        self.last_late = np.empty(0, dtype=np.int64)

    # ------------------------------------------------------------------------------------------------------

    def score(self, machine_id, timestamp_s, sensors, machine_status) -> dict:
        """Apply one sample and return its scores (floats, the failure type's name and its 5 probabilities).

        Raises
        ------
        LateSampleError
            Older than the machine's last accepted sample; nothing is changed.
        InvalidInputError
            A sample that is not 5 numbers, an integer timestamp and a status in 0..2; nothing is changed.
        """
        try:
            # an array row unpacks into five numpy scalars, four times slower than its list
            t, v, h, p, e = sensors.tolist() if type(sensors) is np.ndarray else sensors
            values = [float(t), float(v), float(h), float(p), float(e)]
            status = operator.index(machine_status)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"machine {machine_id}: a sample is an integer timestamp, {N_SENSORS} sensor numbers "
                f"({', '.join(SENSORS)}) and an integer machine_status; got {timestamp_s!r}, {sensors!r}, "
                f"{machine_status!r}"
            ) from exc
        if not 0 <= status <= 2:
            raise InvalidInputError(
                f"machine {machine_id}: machine_status {status} is not 0, 1 or 2; nothing was applied"
            )
        timestamp = timestamp_value(timestamp_s, machine_id)
        machine_id = machine_id_value(machine_id)
        scores = self._engine.score_one(machine_id, timestamp, values, status)
        if scores is None:
            self._late += 1
            self.last_late = np.zeros(1, dtype=np.int64)
            raise LateSampleError(
                f"machine {machine_id}: timestamp {timestamp} is earlier than the last accepted "
                f"{self._engine.last_timestamp(machine_id)}"
            )
        self.last_late = NO_ROWS
        return scores

    def score_batch(
        self, machine_ids, timestamps_s, sensors, machine_status, *, remember: bool = False
    ) -> dict[str, np.ndarray]:
        """Apply a micro-batch of samples in arrival order and return their scores.

        With ``remember=True`` the scorer keeps what it needs to give any row's features afterwards
        (:meth:`last_batch_inputs`), e.g. to explain the few rows that raise an alert.

        Returns
        -------
        dict
            As :meth:`engine.bundle.format.Bundle.predict`: ``anomaly_flag``, ``maintenance_required``,
            ``downtime_risk``, ``predicted_remaining_life`` (n,), ``failure_type`` (names, n) and
            ``failure_type_proba`` (n, 5). A late row is NaN (failure type ``""``) and listed in
            :attr:`last_late`.
        """
        ids = integer_array(machine_ids, "machine_ids")
        timestamps = np.ascontiguousarray(timestamp_array(timestamps_s), dtype=np.int64)
        values = np.ascontiguousarray(sensors, dtype=np.float64)
        statuses = integer_array(machine_status, "machine_status")
        n = ids.shape[0]
        if timestamps.shape != (n,) or values.shape != (n, N_SENSORS) or statuses.shape != (n,):
            raise InvalidInputError(
                f"score_batch needs machine_ids (n,), timestamps_s (n,), sensors (n, {N_SENSORS}) and "
                f"machine_status (n,); got {ids.shape}, {timestamps.shape}, {values.shape} and {statuses.shape}"
            )
        bad = np.flatnonzero((statuses < 0) | (statuses > 2))
        if bad.size:
            raise InvalidInputError(
                f"row {bad[0]}: machine_status {statuses[bad[0]]} is not 0, 1 or 2; nothing was applied"
            )
        result, late = self._engine.score_batch(ids, timestamps, values, statuses, remember)
        self.last_late = np.flatnonzero(late)
        self._late += int(self.last_late.size)
        return result

    def last_batch_inputs(self, rows) -> np.ndarray:
        """The model inputs (67 features and machine_status, shape (len(rows), 68)) of rows of the last
        :meth:`score_batch` call made with ``remember=True``; the same bits the models saw."""
        if not self._engine.remembered:
            raise InvalidInputError(
                "last_batch_inputs needs the last score_batch call to have been made with remember=True"
            )
        return self._engine.batch_inputs(np.asarray(rows, dtype=np.int64).reshape(-1))

    # ------------------------------------------------------------------------------------------------------

    @property
    def stats(self) -> StreamStats:
        """Samples accepted and late, missing values per sensor, machines seen (they survive a snapshot)."""
        missing, accepted = self._engine.missing_and_accepted()
        return StreamStats(accepted=accepted, late=self._late, missing=missing, machines=len(self.machines))

    @property
    def machines(self) -> tuple[int, ...]:
        """Machine ids seen so far, in order of first appearance."""
        return self._engine.machines

    def snapshot(self) -> bytes:
        """Every machine's state, as :meth:`engine.features.stream.FeatureStream.snapshot` writes it."""
        fstate, istate = self._engine.state_arrays()
        return snapshot_bytes(self.machines, fstate, istate, self.utc_offset_minutes, self._late)

    @classmethod
    def restore(cls, bundle, data: bytes, *, backend: str = "c") -> StreamScorer:
        """A scorer that continues exactly where the one that wrote ``data`` stopped (either backend)."""
        ids, fstate, istate, meta = read_snapshot(data)
        scorer = cls(bundle, backend=backend, capacity=max(1, len(ids)))
        if int(meta["utc_offset_minutes"]) != scorer.utc_offset_minutes:
            raise InvalidInputError(
                f"the snapshot was taken with UTC offset {meta['utc_offset_minutes']} min, the bundle uses "
                f"{scorer.utc_offset_minutes}"
            )
        scorer._engine.restore(ids, fstate, istate, data)
        scorer._late = int(meta["late"])
        return scorer
