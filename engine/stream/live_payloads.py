"""What a live stream publishes: each alert on the alerts topic, and each machine's current state, retained.

An alert (QoS 1, not retained)::

    {"alert_id": "7:1735690200:anomaly_flag", "machine_id": 7, "timestamp": 1735690200,
     "time": "2025-01-01T00:10:00Z", "task": "anomaly_flag", "score": 0.93, "failure_type": "Overheating",
     "remaining_life": 31.5, "drivers": [{"input": "temperature", "value": 97.1, "push": 2.4}, ...]}

``alert_id`` is the same every time the same sample raises the same alert, so a consumer can drop the copy that a
scorer killed between publishing and checkpointing publishes again when it rescores (MQTT QoS 1 is at least once).

A machine's state (QoS 0, retained on the state topic, ``{machine_id}`` filled in): the scores of its last accepted
sample and the tasks whose alert is active::

    {"machine_id": 7, "timestamp": 1735690200, "time": "...", "anomaly_flag": 0.93, "maintenance_required": 0.12,
     "downtime_risk": 0.05, "failure_type": "Overheating", "failure_type_proba": {...},
     "predicted_remaining_life": 31.5, "unsupervised_anomaly": 1.7, "active_alerts": ["anomaly_flag"]}

Numbers that are NaN are ``null``.
"""

from __future__ import annotations

import json
import math

from engine.data.schema import FAILURE_TYPES
from engine.models.autoencoder import SCORE_NAME
from engine.stream.alerts import Alert
from engine.stream.outputs import iso_time

__all__ = ["alert_payload", "state_payload"]

SCALAR_SCORES = ("anomaly_flag", "maintenance_required", "downtime_risk", "predicted_remaining_life")


def alert_payload(alert: Alert) -> bytes:
    return _encode(
        {
            "alert_id": f"{alert.machine_id}:{alert.timestamp}:{alert.task}",
            "machine_id": alert.machine_id,
            "timestamp": alert.timestamp,
            "time": iso_time(alert.timestamp).replace(" ", "T"),
            "task": alert.task,
            "score": _number(alert.score),
            "failure_type": alert.failure_type,
            "remaining_life": _number(alert.remaining_life),
            "drivers": [{"input": name, "value": _number(v), "push": _number(p)} for name, v, p in alert.drivers],
        }
    )


def state_payload(machine_id: int, timestamp: int, scores: dict, row: int, active: list[str]) -> bytes:
    """The state of ``machine_id`` after row ``row`` of a batch's ``scores``."""
    document = {"machine_id": machine_id, "timestamp": timestamp, "time": iso_time(timestamp).replace(" ", "T")}
    for name in SCALAR_SCORES:
        document[name] = _number(float(scores[name][row]))
    document["failure_type"] = str(scores["failure_type"][row])
    proba = scores["failure_type_proba"][row]
    document["failure_type_proba"] = {name: _number(float(p)) for name, p in zip(FAILURE_TYPES, proba, strict=True)}
    unsupervised = scores.get(SCORE_NAME)
    document[SCORE_NAME] = None if unsupervised is None else _number(float(unsupervised[row]))
    document["active_alerts"] = active
    return _encode(document)


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _encode(document: dict) -> bytes:
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")
