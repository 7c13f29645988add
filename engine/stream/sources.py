"""What a replay reads: telemetry in arrival order, from a file or generated fleet data, with an identity that a
checkpoint records so a resume refuses other data."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.data.loading import load_telemetry_with_report
from engine.data.schema import SENSORS
from engine.data.synthetic import FLEET_INTERVAL_S
from engine.errors import InvalidInputError
from engine.stream.alerts import (
    ALERT_LABELS,
    ALERT_TASKS,
)

__all__ = ["ReplaySource", "fleet_source", "source_from_file"]


@dataclass(frozen=True)
class ReplaySource:
    """Telemetry in arrival order, as arrays; ``labels`` holds the alerting tasks' label columns present."""

    name: str
    identity: dict
    machine_ids: np.ndarray
    timestamps: np.ndarray
    sensors: np.ndarray
    statuses: np.ndarray
    labels: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return int(self.machine_ids.shape[0])

    @classmethod
    def from_table(cls, table, name: str, identity: dict) -> ReplaySource:
        labels = {
            task: table.column(ALERT_LABELS[task]).to_numpy().astype(np.float64)
            for task in ALERT_TASKS
            if ALERT_LABELS[task] in table.column_names
        }
        return cls(
            name=name,
            identity=identity,
            machine_ids=np.ascontiguousarray(table.column("machine_id").to_numpy(), dtype=np.int64),
            timestamps=np.ascontiguousarray(table.column("timestamp").cast("int64").to_numpy(), dtype=np.int64),
            sensors=np.ascontiguousarray(
                np.column_stack([table.column(s).to_numpy(zero_copy_only=False) for s in SENSORS]), dtype=np.float64
            ),
            statuses=np.ascontiguousarray(table.column("machine_status").to_numpy(), dtype=np.int32),
            labels=labels,
        )


def source_from_file(path: str | os.PathLike) -> ReplaySource:
    """A telemetry file (CSV in the Kaggle layout, Parquet, Arrow IPC), replayed in its row order."""
    path = Path(path)
    table, _ = load_telemetry_with_report(path)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    identity = {"kind": "file", "path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    return ReplaySource.from_table(table, str(path), identity)


def fleet_source(
    rows: int = 20_000,
    *,
    machines: int = 50,
    seed: int = 0,
    interval_s: int = FLEET_INTERVAL_S,
    late_rate: float = 0.001,
) -> ReplaySource:
    """Generated fleet telemetry with labels (engine.data.synthetic, fleet mode), in time order, except that a fraction
    ``late_rate`` of the samples is delivered after their machine's next sample, as a slow network does: the
    scorer rejects those as late (spec: late samples)."""
    from engine.data.synthetic import generate

    if not 0.0 <= late_rate < 1.0:
        raise InvalidInputError(f"late_rate must be in [0, 1), not {late_rate}")
    table = generate(rows, machines=machines, mode="fleet", seed=seed, interval_s=interval_s)
    arrival = np.arange(table.num_rows, dtype=np.float64)
    delayed = np.random.default_rng([seed, 7]).random(table.num_rows) < late_rate
    arrival[delayed] += machines + 0.5  # time-major rows: the machine's next sample is `machines` rows later
    table = table.take(np.argsort(arrival, kind="stable"))
    identity = {
        "kind": "generated",
        "mode": "fleet",
        "rows": rows,
        "machines": machines,
        "seed": seed,
        "interval_s": interval_s,
        "late_rate": late_rate,
    }
    name = f"generated fleet ({table.num_rows:,} samples, {machines} machines, seed {seed})"
    return ReplaySource.from_table(table, name, identity)
