"""The suite's end-to-end record: per sample from Python, the 67 streaming features and then all five tasks'
compiled libraries on one row."""

from __future__ import annotations

import statistics
import time

import numpy as np

from engine.data.schema import SENSORS
from engine.data.synthetic import FLEET_INTERVAL_S, generate

__all__ = ["end_to_end"]


def end_to_end(bundle, models: dict, single_rows: int) -> dict:
    """Per sample from Python: the 67 streaming features, then all five tasks' native libraries on one row."""
    from engine.features.stream import FeatureStream
    from engine.models.tasks import design_matrix

    table = generate(max(single_rows * 5, 1_000), mode="fleet", seed=12, interval_s=FLEET_INTERVAL_S)
    machines = table.column("machine_id").to_numpy()
    stamps = table.column("timestamp").cast("int64").to_numpy()
    sensors = np.column_stack([table.column(c).to_numpy(zero_copy_only=False) for c in SENSORS]).astype(np.float64)
    status = table.column("machine_status").to_numpy()
    stream = FeatureStream(utc_offset_minutes=bundle.utc_offset_minutes)
    features_ns, total_ns = [], []
    for i in range(len(machines)):
        started = time.perf_counter_ns()
        features = stream.update(int(machines[i]), int(stamps[i]), sensors[i])
        middle = time.perf_counter_ns()
        row = design_matrix(features.reshape(1, -1), status[i : i + 1])
        for model in models.values():
            model.predict(row)
        total_ns.append(time.perf_counter_ns() - started)
        features_ns.append(middle - started)
    warm = len(machines) // 10
    return {
        "samples": len(machines) - warm,
        "features_median_ns": statistics.median(features_ns[warm:]),
        "features_and_five_tasks_median_ns": statistics.median(total_ns[warm:]),
        "features_and_five_tasks_p99_ns": _p99(total_ns[warm:]),
        "path": "FeatureStream.update + design_matrix + 5 iot libraries through cffi (lightgbm set)",
    }


def _p99(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
