"""The two engines behind :class:`engine.stream.scorer.StreamScorer`, one class each, with one interface:

- :class:`CBackend`: the bundle's edge library through cffi; every machine's ``iot_state`` is a row of one NumPy
  buffer and a micro-batch is one ``iot_score_many`` call.
- :class:`PythonBackend`: the reference: the Numba kernel (:class:`engine.features.stream.FeatureStream`) and
  :meth:`engine.bundle.format.Bundle.predict_inputs` with each model's own library.

Both take samples the scorer has already validated (statuses in 0..2, timestamps within the limit), so the only
status left for a sample is accepted or late. ``score_batch`` returns the scores and a boolean mask of late rows;
a late row scores NaN and its failure type is ``""``. With the bundle's unsupervised detector, the scores also hold
``unsupervised_anomaly`` and the five ``residual_<sensor>``.
"""

from __future__ import annotations

import numpy as np

from compile.edge_binding import IOT_LATE, IOT_OK, SCORES_DTYPE
from engine.bundle.format import Bundle
from engine.data.schema import FAILURE_TYPES, SENSORS
from engine.errors import CompileError, InvalidInputError
from engine.features.machine_index import MachineIndex
from engine.features.stream import FeatureStream
from engine.models.autoencoder import RESIDUAL_NAMES, SCORE_NAME
from engine.models.tasks import design_matrix
from kernels.history import N_HISTORY
from kernels.names import FEATURE_NAMES
from kernels.state import F_WIDTH, I_COUNT, I_LAST_TS, I_SAMPLES, I_WIDTH, N_SENSORS

__all__ = ["CBackend", "PythonBackend"]

NAMES = np.asarray(FAILURE_TYPES)
NAMES_OR_LATE = np.asarray([*FAILURE_TYPES, ""], dtype=NAMES.dtype)
BINARY_FIELDS = {"anomaly_flag": "anomaly", "maintenance_required": "maintenance", "downtime_risk": "downtime"}
SCORE_FIELDS = (
    "anomaly",
    "maintenance",
    "downtime",
    "failure_type",
    "failure_proba",
    "remaining_life",
    "unsupervised",
    "residual",
)


class CBackend:
    """The edge library (``iotengine compile`` builds it into the bundle)."""

    name = "c"

    def __init__(self, bundle: Bundle, models: str, utc_offset_minutes: int, capacity: int):
        from engine.bundle.edge import edge_library

        self.utc_offset_minutes = utc_offset_minutes
        self._lib = edge_library(bundle)
        if self._lib.state_size != 8 * (F_WIDTH + I_WIDTH + 1):
            raise CompileError(f"{self._lib.path}: iot_state is {self._lib.state_size} bytes, not the kernel's layout")
        if SCORES_DTYPE.names != SCORE_FIELDS:
            raise CompileError(f"iot_scores has the fields {SCORES_DTYPE.names}, not {SCORE_FIELDS}")
        self._detector = bundle.unsupervised is not None
        self._index = MachineIndex()
        self._score_one = self._lib.single_scorer()
        self._states = self._lib.new_states(max(1, int(capacity)), utc_offset_minutes)
        self._score_one.bind(self._states)
        self._journal = None

    def score_one(self, machine_id, timestamp: int, values: list[float], status: int) -> dict | None:
        """Scores of one sample as Python values, or None if it is late."""
        slot = self._index.get(machine_id)
        if slot is None:
            slot = int(self._slots(np.array([machine_id], dtype=np.int64))[0])
        code, (anomaly, maintenance, downtime, failure, proba, remaining, unsupervised, residual) = self._score_one(
            slot, timestamp, values, status
        )
        if code != IOT_OK:
            self._check(code, machine_id)
            return None
        scores = {
            "anomaly_flag": anomaly,
            "maintenance_required": maintenance,
            "downtime_risk": downtime,
            "failure_type": NAMES_OR_LATE[failure],  # -1 (NaN probabilities): ""
            "failure_type_proba": proba,
            "predicted_remaining_life": remaining,
        }
        if self._detector:
            scores[SCORE_NAME] = unsupervised
            scores.update(zip(RESIDUAL_NAMES, residual.tolist(), strict=True))
        return scores

    def score_batch(self, ids, timestamps, values, statuses, remember: bool) -> tuple[dict, np.ndarray]:
        slots = self._slots(ids)
        self._journal = None
        if remember:
            # The states before the batch: replaying a machine's rows from here gives any row's features.
            machines = np.unique(slots)
            self._journal = (slots, machines, self._states[machines].copy(), timestamps, values, statuses)
        if ids.shape[0] == 1:
            return self._score_one_row(int(slots[0]), timestamps, values, statuses)
        out = np.zeros(ids.shape[0], dtype=SCORES_DTYPE)
        codes = np.zeros(ids.shape[0], dtype=np.int32)
        statuses32 = np.ascontiguousarray(statuses, dtype=np.int32)
        self._lib.score_many(self._states, slots, timestamps, values, statuses32, out, codes)
        rejected = np.flatnonzero((codes != IOT_OK) & (codes != IOT_LATE))
        if rejected.size:
            self._check(int(codes[rejected[0]]), f"of row {int(rejected[0])}")
        late = codes == IOT_LATE
        names = NAMES_OR_LATE.take(out["failure_type"])  # a late row's failure_type is -1: the last name, ""
        result = {task: out[field].copy() for task, field in BINARY_FIELDS.items()}
        result["failure_type"] = names
        result["failure_type_proba"] = out["failure_proba"].copy()
        result["predicted_remaining_life"] = out["remaining_life"].copy()
        if self._detector:
            result[SCORE_NAME] = out["unsupervised"].copy()
            result.update(zip(RESIDUAL_NAMES, out["residual"].T.copy(), strict=True))
        return result, late

    def _score_one_row(self, slot, timestamps, values, statuses) -> tuple[dict, np.ndarray]:
        """``score_batch`` of one row through ``iot_score``: the same values as ``iot_score_many``, with a
        fraction of the call overhead (a tick of a Kaggle-layout stream holds one sample)."""
        code, (anomaly, maintenance, downtime, failure, proba, remaining, unsupervised, residual) = self._score_one(
            slot, int(timestamps[0]), values[0].tolist(), int(statuses[0])
        )
        self._check(code, "of row 0")
        late = code == IOT_LATE
        result = {
            "anomaly_flag": np.array([anomaly]),
            "maintenance_required": np.array([maintenance]),
            "downtime_risk": np.array([downtime]),
            "failure_type": NAMES_OR_LATE[[failure]],  # late or NaN probabilities: -1, ""
            "failure_type_proba": proba.reshape(1, -1),
            "predicted_remaining_life": np.array([remaining]),
        }
        if self._detector:
            result[SCORE_NAME] = np.array([unsupervised])
            result.update(zip(RESIDUAL_NAMES, residual.reshape(-1, 1).copy(), strict=True))
        return result, np.array([late])

    def _check(self, code: int, what) -> None:
        # The scorer validated the sample: the library has nothing left to reject; if it does, say what.
        if code not in (IOT_OK, IOT_LATE):
            raise CompileError(f"iot_score rejected the sample {what}: {self._lib.status_str(code)}")

    def batch_inputs(self, rows: np.ndarray) -> np.ndarray:
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
            if i in wanted and code == IOT_OK:
                features[wanted[i]] = row_features
        return design_matrix(features, statuses[rows])

    @property
    def remembered(self) -> bool:
        return self._journal is not None

    @property
    def machines(self) -> tuple[int, ...]:
        return tuple(self._index.ids)

    def missing_and_accepted(self) -> tuple[dict[str, int], int]:
        _, istate = self.state_arrays()
        samples = istate[:, I_SAMPLES]
        counts = istate[:, I_COUNT : I_COUNT + N_SENSORS]
        missing = {name: int((samples - counts[:, s]).sum()) for s, name in enumerate(SENSORS)}
        return missing, int(samples.sum())

    def state_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        used = self._states[: len(self._index)]
        fstate = np.ascontiguousarray(used[:, :F_WIDTH]).view(np.float64)
        return fstate, used[:, F_WIDTH : F_WIDTH + I_WIDTH].copy()

    def last_timestamp(self, machine_id) -> int:
        return int(self._states[self._index.get(machine_id), F_WIDTH + I_LAST_TS])

    def restore(self, ids, fstate: np.ndarray, istate: np.ndarray, snapshot: bytes) -> None:
        self._slots(np.asarray(ids, dtype=np.int64))
        rows = self._states[: len(ids)]
        rows[:, :F_WIDTH] = fstate.view(np.int64)
        rows[:, F_WIDTH : F_WIDTH + I_WIDTH] = istate
        for k, machine in enumerate(ids):  # read_snapshot checked the states; the library has the last word
            if self._lib.state_status(self._states, k) != IOT_OK:
                raise InvalidInputError(f"machine {machine}: the edge library refuses the restored state")

    def _slots(self, ids: np.ndarray) -> np.ndarray:
        """State rows of the machines, new machines added (and their states initialised) in order of first
        appearance."""
        known = len(self._index)
        slots = self._index.slots(ids)
        if len(self._index) > self._states.shape[0]:
            grown = np.zeros((max(2 * self._states.shape[0], len(self._index)), self._states.shape[1]), dtype=np.int64)
            grown[:known] = self._states[:known]  # states hold no pointers: moving the bytes moves them
            self._states = grown
            self._score_one.bind(grown)
        for slot in range(known, len(self._index)):
            self._lib.init_state(self._states, slot, self.utc_offset_minutes)
        return slots


class PythonBackend:
    """The Numba feature kernel and the models' own libraries."""

    name = "python"

    def __init__(self, bundle: Bundle, models: str, utc_offset_minutes: int, capacity: int):
        self._bundle = bundle
        self._models = models
        self._stream = FeatureStream(utc_offset_minutes=utc_offset_minutes, capacity=capacity)
        self._journal = None

    def score_one(self, machine_id, timestamp: int, values: list[float], status: int) -> dict | None:
        out, late = self.score_batch(
            np.array([machine_id], dtype=np.int64),
            np.array([timestamp], dtype=np.int64),
            np.array([values], dtype=np.float64),
            np.array([status], dtype=np.int64),
            remember=False,
        )
        if late[0]:
            return None
        return {
            name: (column[0].copy() if name == "failure_type_proba" else column[0].item())
            for name, column in out.items()
        }

    def score_batch(self, ids, timestamps, values, statuses, remember: bool) -> tuple[dict, np.ndarray]:
        history = np.empty((ids.shape[0], N_HISTORY)) if self._bundle.unsupervised else None
        features = self._stream.update_batch(ids, timestamps, values, history=history)
        self._journal = (features, statuses) if remember else None
        n = ids.shape[0]
        late = np.zeros(n, dtype=bool)
        late[self._stream.last_late] = True
        accepted = ~late
        result = {}
        if not accepted.any():
            floats = (*BINARY_FIELDS, "predicted_remaining_life")
            if history is not None:
                floats += (SCORE_NAME, *RESIDUAL_NAMES)
            for task in floats:
                result[task] = np.full(n, np.nan)
            result["failure_type"] = np.full(n, "", dtype=NAMES.dtype)
            result["failure_type_proba"] = np.full((n, len(FAILURE_TYPES)), np.nan)
            return result, late
        scores = self._bundle.predict_inputs(
            design_matrix(features[accepted], statuses[accepted]),
            backend="lightgbm",
            models=self._models,
            history=None if history is None else history[accepted],
        )
        for name, column in scores.items():
            if name == "failure_type":
                full = np.full(n, "", dtype=column.dtype)
            else:
                full = np.full((n, *column.shape[1:]), np.nan)
            full[accepted] = column
            result[name] = full
        return result, late

    def batch_inputs(self, rows: np.ndarray) -> np.ndarray:
        features, statuses = self._journal
        return design_matrix(features[rows], statuses[rows])

    @property
    def remembered(self) -> bool:
        return self._journal is not None

    @property
    def machines(self) -> tuple[int, ...]:
        return self._stream.machines

    def missing_and_accepted(self) -> tuple[dict[str, int], int]:
        stats = self._stream.stats
        return stats.missing, stats.accepted

    def state_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self._stream.state_arrays()

    def last_timestamp(self, machine_id) -> int:
        return self._stream.last_timestamp(machine_id)

    def restore(self, ids, fstate: np.ndarray, istate: np.ndarray, snapshot: bytes) -> None:
        self._stream = FeatureStream.restore(snapshot)
