"""The engine-agnostic core of a backfill: record batches of one partition in the total order of samples in,
feature or score batches and the partition's final machine states out.

A partition holds whole machines. Its batches arrive sorted by ``(machine_id, timestamp, file_index,
source_row)`` (:data:`engine.backfill.sources.ORDER_COLUMNS`), in any batch sizes; the core carries every
machine's state from one batch to the next in a :class:`engine.features.stream.FeatureStream`, so the features
are those of :func:`engine.features.batch.compute_features` over the same rows, bit for bit, whatever the batch
sizes or the partitioning. The single-process engine runs it over one partition, the Spark job inside
``mapInArrow`` over each of its partitions.

With initial states (a snapshot, e.g. a previous backfill's), a machine continues from its state; a row older
than the state's last sample is late (the stream's policy): NaN features, no scores, counted, never applied.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.data.schema import SENSORS
from engine.errors import InvalidInputError
from engine.features.snapshot import snapshot_bytes
from engine.features.stream import FeatureStream
from engine.models.tasks import design_matrix
from engine.scoring.batch import scores_table
from kernels.history import N_HISTORY
from kernels.names import FEATURE_NAMES

__all__ = ["BackfillCore"]


class BackfillCore:
    """Features (or scores) of one partition's sorted batches, and the final states of its machines.

    Parameters
    ----------
    file_names : sequence of str
        The input files, by ``file_index``: the ``source_file`` column of the output.
    utc_offset_minutes : int, default=0
        Of the hour and day features; a bundle's own when scoring, and the initial states' if given.
    initial_states : bytes, optional
        A FeatureStream snapshot to continue from (it may hold machines of other partitions too).
    bundle : Bundle, optional
        Score with it instead of writing features.
    backend : str, default="native"
        The backend of :meth:`engine.bundle.format.Bundle.predict_inputs` for the scores.

    Examples
    --------
    >>> from engine.data.synthetic import generate
    >>> from engine.backfill.sources import transport_table
    >>> from engine.features.batch import compute_features
    >>> table = generate(200, seed=0).sort_by([("machine_id", "ascending"), ("timestamp", "ascending")])
    >>> core = BackfillCore(["generated"])
    >>> batch = transport_table(table, 0)
    >>> rows = pa.concat_tables([core.process(batch.slice(0, 70)), core.process(batch.slice(70))])
    >>> rows.column_names[:4]
    ['machine_id', 'timestamp', 'source_file', 'source_row']
    >>> features = np.column_stack([rows.column(name).to_numpy() for name in FEATURE_NAMES])
    >>> np.array_equal(features, compute_features(table), equal_nan=True)
    True
    """

    def __init__(self, file_names, *, utc_offset_minutes=0, initial_states=None, bundle=None, backend="native"):
        if initial_states is not None:
            self._stream = FeatureStream.restore(initial_states)
            if self._stream.utc_offset_minutes != utc_offset_minutes:
                raise InvalidInputError(
                    f"the initial states were computed with UTC offset {self._stream.utc_offset_minutes} min, "
                    f"not {utc_offset_minutes} min"
                )
        else:
            self._stream = FeatureStream(utc_offset_minutes=utc_offset_minutes)
        self._files = pa.array(list(file_names), pa.string())
        self._bundle = bundle
        self._backend = backend
        self._seen: list[np.ndarray] = []
        self._last: tuple[int, int] | None = None
        self._late_before = self._stream.stats.late
        self.rows = 0

    @property
    def machines(self) -> np.ndarray:
        """The machines this partition's rows named, ascending."""
        return np.unique(np.concatenate(self._seen)) if self._seen else np.empty(0, dtype=np.int64)

    @property
    def late(self) -> int:
        """Rows older than their machine's initial state, so not applied."""
        return self._stream.stats.late - self._late_before

    def process(self, batch) -> pa.Table:
        """The output rows of one batch (a RecordBatch or Table in the transport schema), in its order."""
        ids = _column(batch, "machine_id")
        stamps = _column(batch, "timestamp")
        self._check_order(ids, stamps)
        n = ids.shape[0]
        self.rows += n
        if n:
            self._seen.append(np.unique(ids))
        sensors = np.column_stack([_column(batch, name) for name in SENSORS]) if n else np.empty((0, len(SENSORS)))
        status = _column(batch, "machine_status")
        scoring_detector = self._bundle is not None and self._bundle.unsupervised is not None
        history = np.empty((n, N_HISTORY)) if scoring_detector else None
        features = self._stream.update_batch(ids, stamps, sensors, history=history)
        late = self._stream.last_late
        files = pa.DictionaryArray.from_arrays(pa.array(_column(batch, "file_index"), pa.int32()), self._files)
        keys = {
            "machine_id": pa.array(ids, pa.int64()),
            "timestamp": pa.array(stamps, pa.int64()).cast(pa.timestamp("s", tz="UTC")),
            "source_file": files,
            "source_row": pa.array(_column(batch, "source_row"), pa.int64()),
        }
        if self._bundle is None:
            extra = [c for c in batch.schema.names if c not in keys and c not in SENSORS and c != "file_index"]
            columns = {**keys, **{name: batch.column(name) for name in extra}}
            columns.update({name: pa.array(features[:, j]) for j, name in enumerate(FEATURE_NAMES)})
            return pa.table(columns)
        X = design_matrix(features, status)
        scores = self._bundle.predict_inputs(X, backend=self._backend, history=history)
        if late.size:
            _blank(scores, late)
        table = scores_table(self._bundle, pa.table({"machine_id": keys["machine_id"], "timestamp": keys["timestamp"]}),
                             scores)  # fmt: skip
        for k, name in enumerate(("source_file", "source_row")):
            table = table.add_column(2 + k, name, keys[name])
        return table

    def final_states(self) -> bytes:
        """A FeatureStream snapshot of the machines this partition's rows named (and of no other)."""
        machines = self.machines
        fstate, istate = self._stream.state_arrays()
        slot_of = {m: i for i, m in enumerate(self._stream.machines)}
        slots = np.asarray([slot_of[m] for m in machines.tolist()], dtype=np.int64)
        return snapshot_bytes(machines, fstate[slots], istate[slots], self._stream.utc_offset_minutes, self.late)

    def _check_order(self, ids: np.ndarray, stamps: np.ndarray) -> None:
        if ids.shape[0] == 0:
            return
        if self._last is not None:
            ids = np.concatenate([[self._last[0]], ids])
            stamps = np.concatenate([[self._last[1]], stamps])
        back = (ids[1:] < ids[:-1]) | ((ids[1:] == ids[:-1]) & (stamps[1:] < stamps[:-1]))
        if back.any():
            row = int(np.flatnonzero(back)[0])
            raise InvalidInputError(
                f"backfill rows are not in (machine_id, timestamp) order: machine {int(ids[row + 1])} at "
                f"{int(stamps[row + 1])} follows machine {int(ids[row])} at {int(stamps[row])}"
            )
        self._last = (int(ids[-1]), int(stamps[-1]))


def _column(batch, name: str) -> np.ndarray:
    column = batch.column(name)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.to_numpy(zero_copy_only=False)


def _blank(scores: dict, rows: np.ndarray) -> None:
    """Late rows have no scores: NaN probabilities and no failure type."""
    for name, values in scores.items():
        values[rows] = "" if name == "failure_type" else np.nan
