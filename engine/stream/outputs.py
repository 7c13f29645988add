"""The CSV outputs of a replay (scores and alerts), written in ticks and committed with each checkpoint, so a resume
continues them without duplicates or gaps."""

from __future__ import annotations

import csv
import hashlib
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
    "open_outputs",
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
    """An append-only CSV whose committed length and sha256 are recorded in the checkpoint."""

    def __init__(self, path: Path, file, digest, lines: int = 0):
        self.path = path
        self._file = file
        self._digest = digest  # of every byte written so far
        self.resumed_lines = lines  # lines (header included) of the committed part a resume kept

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        self._file.write(data)
        self._digest.update(data)

    def commit(self) -> dict:
        """Flush to disk; the ``{"bytes", "sha256"}`` of everything written, for the checkpoint."""
        self._file.flush()
        os.fsync(self._file.fileno())
        return {"bytes": self._file.tell(), "sha256": self._digest.hexdigest()}

    def close(self) -> None:
        self._file.close()


def open_output(path: Path, header: tuple[str, ...], committed: dict | None, name: str) -> OutputFile:
    """A fresh CSV with its header, or, when resuming, the existing one cut back to its committed length after
    checking that those bytes are the ones the checkpoint committed."""
    header_line = (",".join(header) + "\n").encode("utf-8")
    if committed is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        output = OutputFile(path, path.open("wb"), hashlib.sha256())
        output.write(header_line.decode("utf-8"))
        return output
    size = committed["bytes"]
    if not path.exists() or path.stat().st_size < size:
        raise StreamStateError(
            f"{path}: the checkpoint committed {size:,} bytes of {name}, but the file "
            + ("is missing" if not path.exists() else f"has {path.stat().st_size:,}")
        )
    digest, lines = hashlib.sha256(), 0
    with path.open("rb") as f:
        if f.read(len(header_line)) != header_line:
            raise StreamStateError(f"{path}: not the {name} file this stream writes (its header differs)")
        f.seek(0)
        remaining = size
        while remaining:
            chunk = f.read(min(remaining, 1 << 20))
            digest.update(chunk)
            lines += chunk.count(b"\n")
            remaining -= len(chunk)
    if digest.hexdigest() != committed["sha256"]:
        raise StreamStateError(f"{path}: its first {size:,} bytes are not the {name} the checkpoint committed")
    file = path.open("r+b")
    file.truncate(size)  # rows written after the checkpoint are scored again, once
    file.seek(size)
    return OutputFile(path, file, digest, lines)


def open_outputs(scores_path, alerts_path, committed: dict, resumed_position: int | None, where) -> dict:
    """The ``--scores`` and ``--alerts`` files of a stream (those given), cut back to a checkpoint's committed
    length when resuming at ``resumed_position``; refuses a scores file whose committed rows are not that many."""
    outputs = {}
    for name, path, header in (("scores", scores_path, SCORE_COLUMNS), ("alerts", alerts_path, ALERT_COLUMNS)):
        if path is not None:
            outputs[name] = open_output(Path(path), header, committed.get(name), name)
    scores = outputs.get("scores")
    if resumed_position is not None and scores is not None and scores.resumed_lines != resumed_position + 1:
        raise StreamStateError(
            f"{where}: position {resumed_position} does not match the {scores.resumed_lines - 1} rows "
            f"committed in {scores.path}"
        )
    return outputs


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
