"""Synthetic telemetry in the canonical schema: the engine's built-in data.

Two modes:

``"kaggle"``
    Reproduces the public Kaggle "Smart Manufacturing IoT-Cloud Monitoring" dataset: one row per interval, the
    machine drawn at random for each row. The relations below were measured on the real sample
    (../shared/data, 2,231 rows) and hold there without exception:

    - temperature ~ N(75, 10), vibration ~ N(50, 15), humidity ~ U(30, 80), pressure ~ U(1, 5),
      energy_consumption ~ U(0.5, 5), all rounded to two decimals and independent of each other and of the
      status (Kolmogorov-Smirnov p >= 0.3 for each against these laws);
    - machine_status is 0/1/2 with probability 0.1/0.8/0.1;
    - ``anomaly_flag = temperature > 90 or vibration > 80`` (on the rounded values; 90.00 is not anomalous);
    - ``downtime_risk = anomaly_flag`` (0.0 or 1.0);
    - ``predicted_remaining_life`` is a whole number of hours, uniform on 1..49 for anomalous rows and on
      10..499 otherwise;
    - ``failure_type`` is Normal unless the status is 2 (maintenance); then it is drawn independently of the
      sensors with the frequencies of the sample;
    - ``maintenance_required = anomaly_flag or status == 2 or predicted_remaining_life < 20``.

    So anomaly and downtime are exact functions of two sensors, while maintenance, failure type and remaining
    life are partly noise given the inputs: no model can be perfect on them.

``"fleet"``
    What a plant looks like: every machine reports every interval, with machine-specific baselines,
    autocorrelated noise, daily load cycles and degradation episodes that end in failures; labels come from
    that process (see :mod:`kernels.fleet_sim`). Missing values, stuck sensors and spikes are added on top.

Examples
--------
>>> table = generate(1000, seed=1)
>>> table.num_rows, table.column_names[:3]
(1000, ['timestamp', 'machine_id', 'temperature'])
>>> generate(1000, seed=1).equals(table)
True
>>> fleet = generate(200, machines=10, mode="fleet")
>>> fleet.num_rows, len(set(fleet.column("machine_id").to_pylist()))
(200, 10)
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from engine.data.schema import FAILURE_TYPES, TELEMETRY_SCHEMA
from engine.errors import InvalidInputError
from kernels import fleet_sim

__all__ = [
    "FLEET_INTERVAL_S",
    "KAGGLE_FAILURE_TYPE_GIVEN_MAINTENANCE",
    "MODES",
    "generate",
]

MODES = ("kaggle", "fleet")

# Frequencies of failure_type among status-2 rows of the real sample (48, 64, 46, 39, 12 of 209 rows),
# in FAILURE_TYPES order.
KAGGLE_FAILURE_TYPE_GIVEN_MAINTENANCE = np.array([48, 64, 46, 39, 12], dtype=np.float64) / 209.0
KAGGLE_STATUS_PROBABILITIES = np.array([0.1, 0.8, 0.1])
# The interval of every fleet data set of the project (the run's, the stream report's, the benchmarks' and the
# tests'): one sample per machine every 5 minutes, so 100k rows of 50 machines span a week, long enough for
# machines to degrade, fail and be repaired (at the default minute the same rows cover 33 hours and hold none).
FLEET_INTERVAL_S = 300


def generate(
    rows: int,
    *,
    machines: int = 50,
    mode: str = "kaggle",
    seed: int = 0,
    start: str = "2025-01-01",
    interval_s: int = 60,
) -> pa.Table:
    """Generate telemetry with all label columns, in :data:`engine.data.schema.TELEMETRY_SCHEMA`.

    Parameters
    ----------
    rows : int
        Rows wanted. In fleet mode every interval holds one row per machine, so ``rows`` is rounded up to a
        whole number of intervals (``machines * ceil(rows / machines)``).
    machines : int, default=50
        Number of machines; ids are 1..machines.
    mode : {"kaggle", "fleet"}, default="kaggle"
        See the module docstring.
    seed : int, default=0
        The same seed gives the same table, bit for bit.
    start : str, default="2025-01-01"
        First timestamp, ISO 8601, taken as UTC when it has no zone.
    interval_s : int, default=60
        Seconds between intervals (the project's fleet data sets use :data:`FLEET_INTERVAL_S`).

    Returns
    -------
    pyarrow.Table
    """
    if mode not in MODES:
        raise InvalidInputError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if rows < 1:
        raise InvalidInputError(f"rows must be at least 1, not {rows}")
    if machines < 1:
        raise InvalidInputError(f"machines must be at least 1, not {machines}")
    if interval_s < 1:
        raise InvalidInputError(f"interval_s must be at least 1 second, not {interval_s}")
    start_s = _parse_start(start)
    rng = np.random.default_rng(seed)
    if mode == "kaggle":
        return _generate_kaggle(rng, rows, machines, start_s, interval_s)
    return _generate_fleet(rng, rows, machines, start_s, interval_s)


def _parse_start(start: str) -> int:
    try:
        moment = datetime.fromisoformat(start)
    except ValueError as exc:
        raise InvalidInputError(f"start must be an ISO 8601 date or time, not {start!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def _generate_kaggle(rng, rows, machines, start_s, interval_s) -> pa.Table:
    timestamps = start_s + interval_s * np.arange(rows, dtype=np.int64)
    machine_id = rng.integers(1, machines + 1, size=rows, dtype=np.int64)
    temperature = np.round(rng.normal(75.0, 10.0, rows), 2)
    vibration = np.round(rng.normal(50.0, 15.0, rows), 2)
    humidity = np.round(rng.uniform(30.0, 80.0, rows), 2)
    pressure = np.round(rng.uniform(1.0, 5.0, rows), 2)
    energy = np.round(rng.uniform(0.5, 5.0, rows), 2)
    status = rng.choice(3, size=rows, p=KAGGLE_STATUS_PROBABILITIES).astype(np.int8)

    anomaly = (temperature > 90.0) | (vibration > 80.0)
    remaining_life = np.where(anomaly, rng.integers(1, 50, size=rows), rng.integers(10, 500, size=rows)).astype(
        np.float64
    )
    in_maintenance = status == 2
    failure_type = np.where(
        in_maintenance, rng.choice(len(FAILURE_TYPES), size=rows, p=KAGGLE_FAILURE_TYPE_GIVEN_MAINTENANCE), 0
    ).astype(np.int8)
    maintenance = anomaly | in_maintenance | (remaining_life < 20)
    return _table(
        timestamps,
        machine_id,
        np.column_stack([temperature, vibration, humidity, pressure, energy]),
        status,
        anomaly.astype(np.int8),
        remaining_life,
        failure_type,
        anomaly.astype(np.float64),
        maintenance.astype(np.int8),
    )


def _generate_fleet(rng, rows, machines, start_s, interval_s) -> pa.Table:
    steps = -(-rows // machines)
    # Machine-specific baselines and noise levels: the same sensor reading is normal on one machine and
    # anomalous on another, which is what the per-machine features are for.
    baseline = np.column_stack(
        [
            rng.normal(68.0, 8.0, machines),
            rng.normal(45.0, 12.0, machines),
            rng.uniform(35.0, 65.0, machines),
            rng.normal(3.0, 0.4, machines),
            rng.normal(2.5, 0.6, machines),
        ]
    )
    noise_sd = np.array([1.5, 3.0, 2.0, 0.08, 0.15]) * rng.uniform(0.7, 1.5, (machines, 1))
    # AR(1) coefficients from a correlation time of 30 minutes (humidity: 3 hours).
    correlation_s = np.array([1800.0, 1800.0, 10800.0, 1800.0, 1800.0])
    noise_phi = np.exp(-interval_s / correlation_s)
    (
        timestamps,
        machine_index,
        sensors,
        status,
        anomaly,
        remaining_life,
        failure_type,
        downtime,
        maintenance,
    ) = fleet_sim.simulate_fleet(
        rng,
        steps,
        start_s,
        interval_s,
        baseline,
        noise_sd,
        noise_phi,
        120.0,  # mean healthy hours between a repair and the next degradation
        np.array([12.0, 72.0]),  # degradation episode length, hours
        np.array([2.0, 8.0]),  # repair length, hours
        fleet_sim.FAILURE_DRIFT,
        fleet_sim.FAILURE_TYPE_WEIGHTS,
        fleet_sim.LOAD_EFFECT,
        fleet_sim.ANOMALY_BAND,
        0.002,  # missing value rate per sensor reading
        0.0005,  # spike rate per sensor reading
        0.0001,  # rate at which a sensor gets stuck
        120,  # a stuck sensor repeats its value for up to this many intervals
        24.0,  # maintenance is required this many hours ahead of a failure
        12.0,  # downtime risk rises linearly over the last hours before a failure
    )
    sensors = np.round(sensors, 3)
    return _table(
        timestamps,
        machine_index + 1,
        sensors,
        status,
        anomaly,
        np.round(remaining_life, 4),
        failure_type,
        np.round(downtime, 4),
        maintenance,
    )


def _table(
    timestamps, machine_id, sensors, status, anomaly, remaining_life, failure_type, downtime, maintenance
) -> pa.Table:
    arrays = [
        pa.array(timestamps, pa.timestamp("s", tz="UTC")),
        pa.array(machine_id, pa.int64()),
        *(pa.array(np.ascontiguousarray(sensors[:, j]), pa.float64()) for j in range(sensors.shape[1])),
        pa.array(status, pa.int8()),
        pa.array(anomaly, pa.int8()),
        pa.array(remaining_life, pa.float64()),
        pa.DictionaryArray.from_arrays(pa.array(failure_type, pa.int8()), pa.array(FAILURE_TYPES)),
        pa.array(downtime, pa.float64()),
        pa.array(maintenance, pa.int8()),
    ]
    return pa.Table.from_arrays(arrays, schema=TELEMETRY_SCHEMA)
