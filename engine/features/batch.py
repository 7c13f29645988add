"""The 67 features of ../shared/spec/features.md, in batch over tables and one sample at a time.

Both paths run the same Numba kernel (:func:`kernels.step.step`) over the same per-machine state, so for the
same samples they give the same bits:

- :func:`compute_features` (batch): runs the kernel over each machine's samples in time order (when they are not
  already, it orders them, stably, so equal timestamps keep their input order), on all cores, and returns rows in
  the input order (:mod:`engine.features.batch_driver`).
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
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sklearn.base import BaseEstimator, TransformerMixin

from engine.data.loading import load_telemetry
from engine.data.schema import SENSORS
from engine.errors import InvalidInputError
from engine.features.batch_driver import run_features
from engine.features.inputs import offset_seconds
from kernels.names import FEATURE_NAMES

__all__ = [
    "FEATURE_NAMES",
    "FeatureTransformer",
    "compute_features",
    "features_of_valid_table",
    "features_table",
    "write_features",
]


def compute_features(
    table, *, utc_offset_minutes: int = 0, threads: int | None = None, dtype=np.float64, out: np.ndarray | None = None
) -> np.ndarray:
    """The 67 features of every row of a telemetry table (the batch path).

    Parameters
    ----------
    table : pyarrow.Table, pandas.DataFrame or path
        Telemetry, loaded and validated by :func:`engine.data.loading.load_telemetry`. A table already in
        :data:`engine.data.schema.TELEMETRY_SCHEMA` is checked without a copy and its columns are read in place.
    utc_offset_minutes : int, default=0
        Fixed offset of the local time used by the hour and day features.
    threads : int, optional
        The most threads to run the kernel on, machines split between them; default: all cores. The result has
        the same bits for any count.
    dtype : float64 or float32, default=float64
        Every feature is computed in float64; float32 rounds each once as it is stored (half the memory for
        training sets).
    out : ndarray of shape (n_rows, 67), optional
        A C-contiguous array of ``dtype`` to write into (and return), so that a backfill that runs chunk after
        chunk reuses one buffer.

    Returns
    -------
    ndarray of shape (n_rows, 67)
        Row ``i`` holds the features of input row ``i``; columns follow :data:`FEATURE_NAMES`.

    Examples
    --------
    >>> from engine.data.synthetic import generate
    >>> X = compute_features(generate(1_000, seed=0))
    >>> X.shape, X.dtype
    ((1000, 67), dtype('float64'))
    >>> bool((compute_features(generate(1_000, seed=0), threads=1, dtype="float32") == X.astype("float32")).all())
    True
    """
    return features_of_valid_table(load_telemetry(table), utc_offset_minutes, threads=threads, dtype=dtype, out=out)


def features_of_valid_table(
    table: pa.Table, utc_offset_minutes: int, *, threads: int | None = None, dtype=np.float64, out=None
) -> np.ndarray:
    """:func:`compute_features` of a table :func:`load_telemetry` has already returned."""
    return run_features(table, offset_seconds(utc_offset_minutes), threads=threads, dtype=dtype, out=out)


def features_table(table, *, utc_offset_minutes: int = 0, threads: int | None = None, dtype=np.float64) -> pa.Table:
    """Telemetry identifiers and labels with the 67 features as columns (what ``iotengine features`` writes).

    The identifier and label columns are the input's own buffers; the kernel writes the features a column at a
    time into one block whose rows become the Arrow columns, without a copy.
    """
    table = load_telemetry(table)
    offset_s = offset_seconds(utc_offset_minutes)
    by_feature = run_features(table, offset_s, threads=threads, dtype=dtype, by_feature=True)
    keep = ["timestamp", "machine_id", "machine_status"]
    keep += [c for c in table.column_names if c not in keep and c not in SENSORS]
    columns = {name: table.column(name) for name in keep}
    for j, name in enumerate(FEATURE_NAMES):
        columns[name] = pa.array(by_feature[j])
    return pa.table(columns)


class FeatureTransformer(TransformerMixin, BaseEstimator):
    """The 67 features as a scikit-learn transformer; ``fit`` learns nothing.

    Parameters
    ----------
    utc_offset_minutes : int, default=0
    threads : int, optional
        As :func:`compute_features`: default all cores, the same bits for any count.
    dtype : {"float64", "float32"}, default="float64"

    Examples
    --------
    >>> from engine.data.synthetic import generate
    >>> transformer = FeatureTransformer().fit(None)
    >>> transformer.transform(generate(10)).shape
    (10, 67)
    >>> transformer.get_feature_names_out()[:2]
    array(['temperature', 'vibration'], dtype=object)
    """

    def __init__(self, utc_offset_minutes: int = 0, threads: int | None = None, dtype: str = "float64"):
        self.utc_offset_minutes = utc_offset_minutes
        self.threads = threads
        self.dtype = dtype

    def fit(self, X=None, y=None):
        return self

    def transform(self, X) -> np.ndarray:
        """Features of telemetry ``X`` (a table, DataFrame or path), shape (n_rows, 67)."""
        return compute_features(X, utc_offset_minutes=self.utc_offset_minutes, threads=self.threads, dtype=self.dtype)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(FEATURE_NAMES, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


def write_features(table, path, utc_offset_minutes: int = 0, *, threads=None, dtype=np.float64) -> Path:
    """The 67 features of a telemetry table, with ids, timestamps and labels, as Parquet (``.parquet``, ``.pq``)
    or CSV (``.csv``: timestamps in ISO 8601, floats in the shortest form that reads back to the same bits)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise InvalidInputError(f"{path}: unknown output format {path.suffix!r}; use .parquet or .csv")
    features = features_table(table, utc_offset_minutes=utc_offset_minutes, threads=threads, dtype=dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        plain = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in features.columns]
        pacsv.write_csv(pa.Table.from_arrays(plain, names=features.column_names), path)
    else:
        pq.write_table(features, path, compression="zstd")
    return path
