"""Streaming scoring: samples in arrival order, any number of machines, the five tasks per sample.

:class:`StreamScorer` holds one feature state per machine and scores each sample with the bundle's models:

- ``backend="c"`` (default): the bundle's edge library (``iotengine compile`` builds it; compile/edge.py), through
  cffi. Every machine's ``iot_state`` is a row of one NumPy buffer, and a micro-batch is one C call
  (``iot_score_many``), so the Python overhead is paid per batch, not per sample.
- ``backend="python"``: the reference: the Numba kernel (:class:`engine.features.stream.FeatureStream`) and
  :meth:`engine.bundle.format.Bundle.predict_inputs` with each model's own library.

Both follow the spec's policies: a NaN or infinite sensor is missing; a sample older than its machine's last
accepted one is late, is not applied, and scores NaN (:meth:`StreamScorer.score` raises
:class:`engine.errors.LateSampleError`). :meth:`snapshot` writes the states in the format of
:meth:`engine.features.stream.FeatureStream.snapshot` (the C state has the Numba state's fields), so a stream restored
from it continues with the same scores, on either backend.

Example (a compiled bundle; tests/test_edge.py runs these calls)::

    scorer = StreamScorer("artifacts/train/bundle")
    scores = scorer.score(7, 1_735_689_600, [70.0, 50.0, 40.0, 3.0, 2.0], 1)
    scores["anomaly_flag"], scores["failure_type"]      # (0.0123..., 'Normal')
"""

from __future__ import annotations

import operator

import numpy as np

from compile.edge_binding import SCORES_DTYPE
from engine.bundle.format import Bundle
from engine.data.schema import FAILURE_TYPES, SENSORS
from engine.errors import InvalidInputError, LateSampleError
from engine.features.inputs import integer_array, timestamp_array
from engine.features.machine_index import MachineIndex
from engine.features.snapshot import read_snapshot, snapshot_bytes
from engine.features.stream import FeatureStream, StreamStats
from engine.models.tasks import design_matrix
from kernels.names import FEATURE_NAMES
from kernels.state import F_WIDTH, I_COUNT, I_LAST_TS, I_SAMPLES, I_WIDTH, N_SENSORS

__all__ = ["BACKENDS", "StreamScorer"]

BACKENDS = ("c", "python")
TIMESTAMP_LIMIT = 2**62  # iotengine.h: IOT_TIMESTAMP_LIMIT
_NAMES = np.asarray(FAILURE_TYPES)
_BINARY = {"anomaly_flag": "anomaly", "maintenance_required": "maintenance", "downtime_risk": "downtime"}


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
    last_late : ndarray of int
        Rows that :meth:`score_batch` rejected as late in its last call.
    """

    def __init__(self, bundle, *, backend: str = "c", capacity: int = 64):
        if backend not in BACKENDS:
            raise InvalidInputError(f"backend must be one of {BACKENDS}, not {backend!r}")
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        self.backend = backend
        self.utc_offset_minutes = int(self.bundle.manifest.get("utc_offset_minutes", 0))
        edge = self.bundle.manifest.get("edge")
        self.models = edge["models"] if edge else "chosen"
        self._index = MachineIndex()
        self._late = 0
        self._journal = None
        self.last_late = np.empty(0, dtype=np.int64)
        if backend == "c":
            from engine.bundle.edge import edge_library

            self._lib = edge_library(self.bundle)
            if self._lib.state_size != 8 * (F_WIDTH + I_WIDTH + 1):
                raise InvalidInputError(
                    f"{self._lib.path}: iot_state is {self._lib.state_size} bytes, not the kernel's layout"
                )
            self._states = self._lib.new_states(max(1, int(capacity)), self.utc_offset_minutes)
            self._score_one = self._lib.single_scorer()
        else:
            self._stream = FeatureStream(utc_offset_minutes=self.utc_offset_minutes, capacity=capacity)

    # ------------------------------------------------------------------------------------------------------

    def score(self, machine_id, timestamp_s, sensors, machine_status) -> dict:
        """Apply one sample and return its scores (floats, the failure type's name and its 5 probabilities).

        Raises
        ------
        LateSampleError
            Older than the machine's last accepted sample; nothing is changed.
        ValueError
            A sample that is not 5 numbers, an integer timestamp and a status in 0..2; nothing is changed.
        """
        try:
            values = [float(v) for v in sensors]
            timestamp = operator.index(timestamp_s)
            status = operator.index(machine_status)
            if len(values) != N_SENSORS:
                raise ValueError
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"machine {machine_id}: a sample is an integer timestamp, {N_SENSORS} sensor numbers "
                f"({', '.join(SENSORS)}) and an integer machine_status; got {timestamp_s!r}, {sensors!r}, "
                f"{machine_status!r}"
            ) from exc
        if self.backend == "python":
            out = self.score_batch([machine_id], [timestamp], [values], [status])
            if self.last_late.size:
                raise self._late_error(machine_id, timestamp)
            return {
                name: (column[0].copy() if name == "failure_type_proba" else column[0].item())
                for name, column in out.items()
            }
        if not 0 <= status <= 2:
            raise InvalidInputError(
                f"machine {machine_id}: machine_status {status} is not 0, 1 or 2; nothing was applied"
            )
        if not -TIMESTAMP_LIMIT <= timestamp <= TIMESTAMP_LIMIT:
            raise InvalidInputError(f"machine {machine_id}: timestamp {timestamp} is out of range; nothing was applied")
        slot = self._index.get(machine_id)
        if slot is None:
            slot = int(self._slots(np.array([machine_id], dtype=np.int64))[0])
        code, scores = self._score_one(self._states, slot, timestamp, values, status)
        if code == 1:
            self._late += 1
            self.last_late = np.zeros(1, dtype=np.int64)
            raise self._late_error(machine_id, timestamp)
        if code != 0:
            raise RuntimeError(f"iot_score rejected machine {machine_id}'s sample (code {code})")
        self.last_late = np.empty(0, dtype=np.int64)
        return {
            "anomaly_flag": scores.anomaly,
            "maintenance_required": scores.maintenance,
            "downtime_risk": scores.downtime,
            "failure_type": FAILURE_TYPES[scores.failure_type],
            "failure_type_proba": np.array(list(scores.failure_proba)),
            "predicted_remaining_life": scores.remaining_life,
        }

    def _late_error(self, machine_id, timestamp) -> LateSampleError:
        return LateSampleError(
            f"machine {machine_id}: timestamp {timestamp} is earlier than the last accepted "
            f"{self._last_timestamp(machine_id)}"
        )

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
        bad = np.flatnonzero(np.abs(timestamps) > TIMESTAMP_LIMIT)
        if bad.size:
            raise InvalidInputError(
                f"row {bad[0]}: timestamp {timestamps[bad[0]]} is out of range; nothing was applied"
            )
        self._journal = None
        if self.backend == "python":
            return self._score_python(ids, timestamps, values, statuses, remember)
        slots = self._slots(ids)
        if n == 1:
            return self._score_one_row(int(slots[0]), timestamps, values, statuses, remember)
        if remember:
            # The states before the batch: replaying a machine's rows from here gives any row's features.
            machines = np.unique(slots)
            self._journal = (slots, machines, self._states[machines].copy(), timestamps, values, statuses)
        out = np.zeros(n, dtype=SCORES_DTYPE)
        codes = np.zeros(n, dtype=np.int32)
        statuses32 = np.ascontiguousarray(statuses, dtype=np.int32)
        self._lib.score_many(self._states, slots, timestamps, values, statuses32, out, codes)
        if (codes > 1).any():  # validated above: the library has nothing left to reject
            raise RuntimeError(f"iot_score rejected row {int(np.flatnonzero(codes > 1)[0])}")
        late = codes == 1
        self.last_late = np.flatnonzero(late)
        self._late += int(self.last_late.size)
        names = _NAMES[np.clip(out["failure_type"], 0, len(FAILURE_TYPES) - 1)]
        names[late] = ""
        result = {task: out[field].copy() for task, field in _BINARY.items()}
        result["failure_type"] = names
        result["failure_type_proba"] = out["failure_proba"].copy()
        result["predicted_remaining_life"] = out["remaining_life"].copy()
        return result

    def _score_one_row(self, slot, timestamps, values, statuses, remember) -> dict[str, np.ndarray]:
        """``score_batch`` of one row through ``iot_score``: the same values as ``iot_score_many``, with a
        fraction of the call overhead (a tick of a Kaggle-layout stream holds one sample)."""
        if remember:
            self._journal = (
                np.array([slot]),
                np.array([slot]),
                self._states[[slot]].copy(),
                timestamps,
                values,
                statuses,
            )
        code, scores = self._score_one(self._states, slot, int(timestamps[0]), values[0].tolist(), int(statuses[0]))
        if code > 1:  # validated by the caller: the library has nothing left to reject
            raise RuntimeError(f"iot_score rejected row 0 (code {code})")
        late = code == 1
        self.last_late = np.zeros(1 if late else 0, dtype=np.int64)
        self._late += int(late)
        return {
            "anomaly_flag": np.array([scores.anomaly]),
            "maintenance_required": np.array([scores.maintenance]),
            "downtime_risk": np.array([scores.downtime]),
            "failure_type": np.array(["" if late else FAILURE_TYPES[scores.failure_type]], dtype=_NAMES.dtype),
            "failure_type_proba": np.array([list(scores.failure_proba)]),
            "predicted_remaining_life": np.array([scores.remaining_life]),
        }

    def last_batch_inputs(self, rows) -> np.ndarray:
        """The model inputs (67 features and machine_status, shape (len(rows), 68)) of rows of the last
        :meth:`score_batch` call made with ``remember=True``; the same bits the models saw."""
        if self._journal is None:
            raise InvalidInputError(
                "last_batch_inputs needs the last score_batch call to have been made with remember=True"
            )
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if self.backend == "python":
            features, statuses = self._journal
            return design_matrix(features[rows], statuses[rows])
        slots, machines, before, timestamps, values, statuses = self._journal
        if rows.size and (rows.min() < 0 or rows.max() >= slots.shape[0]):
            raise IndexError(f"rows must be in 0..{slots.shape[0] - 1}")
        wanted = {int(r): k for k, r in enumerate(rows)}
        needed = {int(slots[r]) for r in rows}
        scratch = before.copy()  # a machine's state before the batch, in row searchsorted(machines, slot)
        features = np.full((rows.shape[0], len(FEATURE_NAMES)), np.nan)
        row_features = np.empty(len(FEATURE_NAMES))
        last = int(rows.max()) if rows.size else -1
        for i in range(last + 1):
            slot = int(slots[i])
            if slot not in needed:
                continue
            k = int(np.searchsorted(machines, slot))
            code = self._lib.features(scratch, k, int(timestamps[i]), values[i], row_features)
            if i in wanted and code == 0:
                features[wanted[i]] = row_features
        return design_matrix(features, statuses[rows])

    def _score_python(self, ids, timestamps, values, statuses, remember) -> dict[str, np.ndarray]:
        features = self._stream.update_batch(ids, timestamps, values)
        if remember:
            self._journal = (features, statuses)
        self.last_late = self._stream.last_late
        self._late = self._stream.stats.late
        n = ids.shape[0]
        accepted = np.ones(n, dtype=bool)
        accepted[self.last_late] = False
        result = {}
        if not accepted.any():
            for task in (*_BINARY, "predicted_remaining_life"):
                result[task] = np.full(n, np.nan)
            result["failure_type"] = np.full(n, "", dtype=np.asarray(FAILURE_TYPES).dtype)
            result["failure_type_proba"] = np.full((n, len(FAILURE_TYPES)), np.nan)
            return result
        scores = self.bundle.predict_inputs(
            design_matrix(features[accepted], statuses[accepted]), backend="lightgbm", models=self.models
        )
        for name, column in scores.items():
            if name == "failure_type":
                full = np.full(n, "", dtype=column.dtype)
            else:
                full = np.full((n, *column.shape[1:]), np.nan)
            full[accepted] = column
            result[name] = full
        return result

    # ------------------------------------------------------------------------------------------------------

    @property
    def stats(self) -> StreamStats:
        """Samples accepted and late, missing values per sensor, machines seen (they survive a snapshot)."""
        if self.backend == "python":
            return self._stream.stats
        _, istate = self._state_arrays()
        samples = istate[:, I_SAMPLES]
        counts = istate[:, I_COUNT : I_COUNT + N_SENSORS]
        missing = {name: int((samples - counts[:, s]).sum()) for s, name in enumerate(SENSORS)}
        return StreamStats(accepted=int(samples.sum()), late=self._late, missing=missing, machines=len(self._index))

    @property
    def machines(self) -> tuple[int, ...]:
        return self._stream.machines if self.backend == "python" else tuple(self._index.ids)

    def snapshot(self) -> bytes:
        """Every machine's state, as :meth:`engine.features.stream.FeatureStream.snapshot` writes it."""
        if self.backend == "python":
            return self._stream.snapshot()
        fstate, istate = self._state_arrays()
        return snapshot_bytes(self._index.ids, fstate, istate, self.utc_offset_minutes, self._late)

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
        if backend == "python":
            scorer._stream = FeatureStream.restore(data)
            return scorer
        scorer._slots(np.asarray(ids, dtype=np.int64))
        rows = scorer._states[: len(ids)]
        rows[:, :F_WIDTH] = fstate.view(np.int64)
        rows[:, F_WIDTH : F_WIDTH + I_WIDTH] = istate
        scorer._late = int(meta["late"])
        return scorer

    # ------------------------------------------------------------------------------------------------------

    def _state_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        used = self._states[: len(self._index)]
        fstate = np.ascontiguousarray(used[:, :F_WIDTH]).view(np.float64)
        return fstate, used[:, F_WIDTH : F_WIDTH + I_WIDTH].copy()

    def _last_timestamp(self, machine_id) -> int:
        if self.backend == "python":
            return int(self._stream._istate[self._stream._slot_of[machine_id], I_LAST_TS])
        return int(self._states[self._index.get(machine_id), F_WIDTH + I_LAST_TS])

    def _slots(self, ids: np.ndarray) -> np.ndarray:
        """State rows of the machines, new machines added (and their states initialised) in order of first
        appearance."""
        known = len(self._index)
        slots = self._index.slots(ids)
        if len(self._index) > self._states.shape[0]:
            grown = np.zeros((max(2 * self._states.shape[0], len(self._index)), self._states.shape[1]), dtype=np.int64)
            grown[:known] = self._states[:known]  # states hold no pointers: moving the bytes moves them
            self._states = grown
        for slot in range(known, len(self._index)):
            self._lib.init_state(self._states, slot, self.utc_offset_minutes)
        return slots
