"""The canonical telemetry schema: the sensor columns, the labels, their types and allowed values.

>>> TELEMETRY_SCHEMA.names[:3]
['timestamp', 'machine_id', 'temperature']
"""

from __future__ import annotations

import pyarrow as pa

from kernels.names import FAILURE_TYPES, SENSORS

__all__ = [
    "FAILURE_TYPES",
    "FAILURE_TYPE_TYPE",
    "INT_DOMAINS",
    "LABEL_COLUMNS",
    "MACHINE_STATUSES",
    "REQUIRED_COLUMNS",
    "SENSORS",
    "TELEMETRY_SCHEMA",
]

MACHINE_STATUSES: dict[int, str] = {0: "idle", 1: "running", 2: "maintenance"}

FAILURE_TYPE_TYPE = pa.dictionary(pa.int8(), pa.string())

TELEMETRY_SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.timestamp("s", tz="UTC"), nullable=False),
        pa.field("machine_id", pa.int64(), nullable=False),
        *(pa.field(name, pa.float64(), nullable=False) for name in SENSORS),
        pa.field("machine_status", pa.int8(), nullable=False),
        pa.field("anomaly_flag", pa.int8(), nullable=False),
        pa.field("predicted_remaining_life", pa.float64(), nullable=False),
        pa.field("failure_type", FAILURE_TYPE_TYPE, nullable=False),
        pa.field("downtime_risk", pa.float64(), nullable=False),
        pa.field("maintenance_required", pa.int8(), nullable=False),
    ]
)
"""The canonical schema. The first eight columns are required; the five label columns are optional."""

REQUIRED_COLUMNS: tuple[str, ...] = ("timestamp", "machine_id", *SENSORS, "machine_status")
LABEL_COLUMNS: tuple[str, ...] = (
    "anomaly_flag",
    "predicted_remaining_life",
    "failure_type",
    "downtime_risk",
    "maintenance_required",
)

# Allowed integer values per integer column; None means any int64.
INT_DOMAINS: dict[str, tuple[int, ...] | None] = {
    "machine_id": None,
    "machine_status": tuple(MACHINE_STATUSES),
    "anomaly_flag": (0, 1),
    "maintenance_required": (0, 1),
}
