"""Histories for the backfill tests: machines of very different sizes, missing values, equal timestamps within
a machine and across files, rows in no order, spread over Parquet files in partition folders and a Kaggle CSV;
and the single-process oracles of their features, scores and final states."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.data.loading import load_telemetry, save_telemetry, write_kaggle_csv
from engine.data.schema import SENSORS
from engine.data.synthetic import generate
from engine.features.batch import compute_features
from engine.features.stream import FeatureStream


def skewed_history(rng: np.random.Generator, rows: int = 1_500) -> pa.Table:
    """Telemetry with labels: one machine holds ~40% of the rows, a few hold one or two."""
    table = generate(rows, seed=int(rng.integers(1 << 30)))
    weights = np.r_[40.0, rng.uniform(0.1, 6.0, size=11), 0.05, 0.05]
    ids = rng.choice(
        np.r_[3, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 900, 2**40], size=rows, p=weights / weights.sum()
    )
    steps = rng.choice([0, 60, 60, 60, 3_600], size=rows)  # 0: equal timestamps of a machine
    stamps = 1_735_689_600 + np.cumsum(steps)
    columns = {name: table.column(name) for name in table.column_names}
    columns["machine_id"] = pa.array(ids, pa.int64())
    columns["timestamp"] = pa.array(stamps, pa.int64()).cast(pa.timestamp("s", tz="UTC"))
    for name in SENSORS:
        values = table.column(name).to_numpy().copy()
        values[rng.random(rows) < 0.08] = np.nan
        columns[name] = pa.array(values)
    shuffled = pa.table(columns).take(rng.permutation(rows))
    return shuffled


def write_history(table: pa.Table, folder: Path) -> list[Path]:
    """The table spread over three files: two Parquet files in partition folders and a Kaggle-format CSV."""
    n = table.num_rows
    cuts = [0, n // 3, 2 * n // 3, n]
    paths = [
        folder / "day=2025-01-01" / "part-0.parquet",
        folder / "day=2025-01-02" / "part-0.parquet",
        folder / "z.csv",
    ]
    for path, start, stop in zip(paths, cuts, cuts[1:], strict=False):
        path.parent.mkdir(parents=True, exist_ok=True)
        part = table.slice(start, stop - start)
        save_telemetry(part, path) if path.suffix == ".parquet" else write_kaggle_csv(part, path)
    return sorted(paths, key=str)


def oracle_table(paths: list[Path]) -> tuple[pa.Table, np.ndarray]:
    """The files loaded one after another in path order, and the order of the samples (machine, timestamp,
    file, row) as row indices of that table."""
    tables = [load_telemetry(p) for p in sorted(paths, key=lambda p: str(p.resolve()))]
    table = pa.concat_tables(tables)
    file_index = np.concatenate([np.full(t.num_rows, i) for i, t in enumerate(tables)])
    row = np.concatenate([np.arange(t.num_rows) for t in tables])
    ids = table.column("machine_id").to_numpy()
    stamps = table.column("timestamp").cast(pa.int64()).to_numpy()
    return table, np.lexsort((row, file_index, stamps, ids))


def oracle_features(paths: list[Path]) -> np.ndarray:
    """compute_features of the files in path order, rows in the order of the samples."""
    table, order = oracle_table(paths)
    return compute_features(table)[order]


def oracle_states(paths: list[Path], initial: bytes | None = None) -> FeatureStream:
    """A FeatureStream fed every sample one at a time, in the order of the samples."""
    table, order = oracle_table(paths)
    stream = FeatureStream() if initial is None else FeatureStream.restore(initial)
    ids = table.column("machine_id").to_numpy()
    stamps = table.column("timestamp").cast(pa.int64()).to_numpy()
    sensors = np.column_stack([table.column(name).to_numpy() for name in SENSORS])
    for i in order.tolist():
        try:
            stream.update(int(ids[i]), int(stamps[i]), sensors[i])
        except ValueError:  # a late sample: not applied, counted
            pass
    return stream
