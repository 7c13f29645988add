"""What a replay reads: telemetry in arrival order, from a file or generated fleet data, with an identity that a
checkpoint records so a resume refuses other data."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
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

__all__ = ["ReplaySource", "fleet_source", "source_from_file", "warm_states"]


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
    history: object = None  # a generated fleet's earlier telemetry (pyarrow Table), to warm machines up from

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
    history_steps: int = 0,
) -> ReplaySource:
    """Generated fleet telemetry with labels (engine.data.synthetic, fleet mode), in time order, except that a fraction
    ``late_rate`` of the samples is delivered after their machine's next sample, as a slow network does: the
    scorer rejects those as late (spec: late samples).

    With ``history_steps``, the fleet is generated that many intervals longer and the replay is the end of it: its
    first ``history_steps`` samples of every machine are the source's ``history`` (in time order), what a plant's
    records hold of machines that were running before the stream started (:func:`warm_states` of it)."""
    from engine.data.synthetic import generate

    if not 0.0 <= late_rate < 1.0:
        raise InvalidInputError(f"late_rate must be in [0, 1), not {late_rate}")
    if history_steps < 0:
        raise InvalidInputError(f"history_steps must not be negative, not {history_steps}")
    earlier = history_steps * machines
    table = generate(earlier + rows, machines=machines, mode="fleet", seed=seed, interval_s=interval_s)
    history = table.slice(0, earlier) if earlier else None
    table = table.slice(earlier)
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
    if history_steps:
        identity["history_steps"] = history_steps
    name = f"generated fleet ({table.num_rows:,} samples, {machines} machines, seed {seed})"
    source = ReplaySource.from_table(table, name, identity)
    return replace(source, history=history)


def warm_states(history, utc_offset_minutes: int = 0) -> bytes:
    """Every machine's feature state after its history (any telemetry table, in arrival order): the snapshot a
    stream starts from (``Replay(initial_states=...)``), as a backfill's ``--states`` would hold it."""
    from engine.features.stream import FeatureStream

    source = ReplaySource.from_table(history, "history", {})
    stream = FeatureStream(utc_offset_minutes=utc_offset_minutes, capacity=max(1, len(np.unique(source.machine_ids))))
    stream.update_batch(source.machine_ids, source.timestamps, source.sensors)
    return stream.snapshot()
