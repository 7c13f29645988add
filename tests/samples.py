"""Telemetry as the arrays the scorers take, and fleet telemetry with every kind of bad sample."""

from __future__ import annotations

import numpy as np

from engine.data.loading import load_telemetry
from engine.data.schema import SENSORS
from engine.data.synthetic import FLEET_INTERVAL_S, generate

__all__ = ["fleet_with_bad_samples", "telemetry_arrays"]


def telemetry_arrays(table):
    table = load_telemetry(table)
    ids = table.column("machine_id").to_numpy().astype(np.int64)
    stamps = table.column("timestamp").cast("int64").to_numpy().copy()
    values = np.column_stack([table.column(name).to_numpy() for name in SENSORS])
    return ids, stamps, values, table.column("machine_status").to_numpy().astype(np.int64)


def fleet_with_bad_samples(rows: int, seed: int):
    """Fleet telemetry in arrival order with 1% late samples (an hour old), and NaN, inf, -0.0 and absurd
    (beyond +-1e9: missing, kernels/state.py SENSOR_LIMIT) sensors."""
    ids, stamps, values, statuses = telemetry_arrays(
        generate(rows, mode="fleet", seed=seed, interval_s=FLEET_INTERVAL_S)
    )
    rng = np.random.default_rng(seed)
    late = rng.choice(rows, rows // 100, replace=False)
    stamps[late] -= 3600
    cells = rng.random(values.shape)
    values[cells < 0.004] = np.nan
    values[(cells >= 0.004) & (cells < 0.005)] = np.inf
    values[(cells >= 0.005) & (cells < 0.006)] = -np.inf
    values[(cells >= 0.006) & (cells < 0.007)] = -0.0
    absurd = (cells >= 0.007) & (cells < 0.008)
    values[absurd] = rng.choice([-1.0, 1.0], absurd.sum()) * 10.0 ** rng.uniform(9.01, 308, absurd.sum())
    return ids, stamps, values, statuses
