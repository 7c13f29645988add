"""The CSV outputs of a replay (scores and alerts), written in ticks and committed with each checkpoint, so a resume
continues them without duplicates or gaps."""

from __future__ import annotations

import csv
import io
import os
from datetime import datetime, timezone
from pathlib import Path

from engine.data.schema import FAILURE_TYPES
from engine.errors import StreamStateError
from engine.models.autoencoder import SCORE_NAME
from engine.stream.alerts import (
    Alert,
)

__all__ = [
    "ALERT_COLUMNS",
    "SCORE_COLUMNS",
    "OutputFile",
    "alert_line",
    "format_drivers",
    "iso_time",
    "open_output",
    "score_lines",
]


SCORE_COLUMNS = (
    "row",
    "machine_id",
    "timestamp",
    "late",
    "anomaly_flag",
    "maintenance_required",
    "downtime_risk",
    "failure_type",
    *(f"p_{name.lower().replace(' ', '_')}" for name in FAILURE_TYPES),
    "predicted_remaining_life",
    SCORE_NAME,  # NaN with a bundle that has no unsupervised detector
)


ALERT_COLUMNS = (
    "row",
    "machine_id",
    "time",
    "task",
    "score",
    "failure_type",
    "predicted_remaining_life",
    "drivers",
)


class OutputFile:
    """An append-only CSV whose committed length is recorded in the checkpoint."""

    def __init__(self, path: Path, file):
        self.path = path
        self._file = file

    def write(self, text: str) -> None:
        self._file.write(text)

    def commit(self) -> int:
        self._file.flush()
        os.fsync(self._file.fileno())
        return self._file.tell()

    def close(self) -> None:
        self._file.close()


def open_output(path: Path, header: tuple[str, ...], committed: int | None, name: str) -> OutputFile:
    """A fresh CSV with its header, or, when resuming, the existing one cut back to its committed length."""
    header_line = ",".join(header) + "\n"
    if committed is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = path.open("w", newline="")
        file.write(header_line)
        return OutputFile(path, file)
    if not path.exists() or path.stat().st_size < committed:
        raise StreamStateError(
            f"{path}: the checkpoint committed {committed:,} bytes of {name}, but the file "
            + ("is missing" if not path.exists() else f"has {path.stat().st_size:,}")
        )
    with path.open("rb") as f:
        if not f.read(len(header_line)).decode("utf-8", "replace") == header_line:
            raise StreamStateError(f"{path}: not the {name} file this stream writes (its header differs)")
    file = path.open("r+", newline="")
    file.truncate(committed)  # rows written after the checkpoint are scored again, once
    file.seek(committed)
    return OutputFile(path, file)


def score_lines(start: int, ids, timestamps, late, scores: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    proba = scores["failure_type_proba"]
    unsupervised = scores.get(SCORE_NAME)
    for r in range(ids.shape[0]):
        writer.writerow(
            (
                start + r,
                int(ids[r]),
                int(timestamps[r]),
                int(late[r]),
                repr(float(scores["anomaly_flag"][r])),
                repr(float(scores["maintenance_required"][r])),
                repr(float(scores["downtime_risk"][r])),
                scores["failure_type"][r],
                *(repr(float(p)) for p in proba[r]),
                repr(float(scores["predicted_remaining_life"][r])),
                repr(float("nan") if unsupervised is None else float(unsupervised[r])),
            )
        )
    return buffer.getvalue()


def iso_time(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def format_drivers(drivers) -> str:
    return "; ".join(f"{name}={value:.4g} ({push:+.3g})" for name, value, push in drivers)


def alert_line(alert: Alert) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(
        (
            alert.row,
            alert.machine_id,
            iso_time(alert.timestamp),
            alert.task,
            repr(alert.score),
            alert.failure_type,
            repr(alert.remaining_life),
            format_drivers(alert.drivers),
        )
    )
    return buffer.getvalue()
