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
>>> from engine.features.stream import FeatureStream
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
engine.errors.LateSampleError: machine 7: timestamp 1735689000 is earlier than the last accepted 1735689660
>>> stream.stats.accepted, stream.stats.late, stream.stats.missing["vibration"]
(2, 1, 1)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.base import BaseEstimator, TransformerMixin

from engine.data.loading import load_telemetry
from engine.data.schema import SENSORS
from engine.features.inputs import offset_seconds, telemetry_columns
from kernels.names import FEATURE_NAMES, N_FEATURES
from kernels.state import allocate
from kernels.step import drive

__all__ = [
    "FEATURE_NAMES",
    "FeatureTransformer",
    "compute_features",
    "features_of_valid_table",
    "features_table",
    "write_features",
]


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
    return features_of_valid_table(load_telemetry(table), utc_offset_minutes)


def features_of_valid_table(table: pa.Table, utc_offset_minutes: int) -> np.ndarray:
    machine_ids, timestamps, sensors = telemetry_columns(table)
    offset_s = offset_seconds(utc_offset_minutes)
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
    features = features_of_valid_table(table, utc_offset_minutes)
    keep = ["timestamp", "machine_id", "machine_status"]
    keep += [c for c in table.column_names if c not in keep and c not in SENSORS]
    columns = {name: table.column(name) for name in keep}
    for j, name in enumerate(FEATURE_NAMES):
        columns[name] = pa.array(features[:, j])
    return pa.table(columns)


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


def write_features(table, path, utc_offset_minutes: int = 0) -> Path:
    """The 67 features of a telemetry table, with ids, timestamps and labels, as Parquet."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(features_table(table, utc_offset_minutes=utc_offset_minutes), path, compression="zstd")
    return path
