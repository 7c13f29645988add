"""The checkpoint file of ``iotengine stream --state FILE``: where a replay stopped and everything it knew.

One JSON document, written atomically (a temporary file, fsync, then rename), so a stream killed at any
moment leaves either the previous checkpoint or the new one, never half of one::

    format, version       "iotengine-stream-state", 2
    bundle                sha256 of the bundle's bundle.json: a checkpoint only resumes with its own models
    source                what is replayed (a file's path, size and sha256, or the generator's parameters)
    position              samples consumed: the next run starts at this row of the source, in arrival order
    outputs               per --scores / --alerts file: the bytes that hold exactly the consumed rows and their
                          sha256 ({"scores": {"bytes": n, "sha256": h}}); a resumed run writes the same files
    tracker               the alert hysteresis of every machine (engine.stream.alerts.AlertTracker.state)
    alerts                every alert raised so far (for the summary's counts and precision/recall)
    snapshot              the per-machine feature states (engine.features.snapshot format, Arrow IPC), base64
    live                  a live MQTT stream's counters and the messages delivered since the previous checkpoint
                          (engine.stream.live); {} for a replay
    sha256                of the whole document without this field (canonical JSON): any edit is refused

Nothing is pickled: every field is plain JSON of a checked shape, and the states are the feature stream's own
format.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import StreamStateError

__all__ = ["StreamState", "StreamStateError", "read_state", "write_state"]

FORMAT = "iotengine-stream-state"
VERSION = 3
OUTPUT_NAMES = ("scores", "alerts")
ALERT_FIELDS = {
    "row": int,
    "machine_id": int,
    "timestamp": int,
    "task": str,
    "score": (int, float),
    "failure_type": str,
    "remaining_life": (int, float),
    "drivers": list,
}


@dataclass
class StreamState:
    bundle: str
    source: dict
    position: int
    snapshot: bytes
    tracker: dict
    alerts: list[dict] = field(default_factory=list)
    outputs: dict[str, dict] = field(default_factory=dict)  # name: {"bytes": int, "sha256": str}
    live: dict = field(default_factory=dict)


def write_state(path: str | os.PathLike, state: StreamState) -> None:
    """Write ``state`` to ``path`` atomically."""
    path = Path(path)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "bundle": state.bundle,
        "source": state.source,
        "position": int(state.position),
        "outputs": {name: {"bytes": int(o["bytes"]), "sha256": str(o["sha256"])} for name, o in state.outputs.items()},
        "tracker": state.tracker,
        "alerts": state.alerts,
        "snapshot": base64.b64encode(state.snapshot).decode("ascii"),
        "live": state.live,
    }
    document["sha256"] = _digest(document)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w") as f:
        json.dump(document, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def read_state(path: str | os.PathLike) -> StreamState:
    """Read and verify a checkpoint; raises :class:`StreamStateError` naming what is wrong."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StreamStateError(f"{path}: not a readable stream checkpoint ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise StreamStateError(f"{path}: not an iotengine stream checkpoint")
    if document.get("version") != VERSION:
        raise StreamStateError(f"{path}: checkpoint version {document.get('version')!r}; this engine reads {VERSION}")
    if document.get("sha256") != _digest({k: v for k, v in document.items() if k != "sha256"}):
        raise StreamStateError(f"{path}: the checkpoint does not match its sha256: it was edited or damaged")
    problem = _shape_problem(document)
    if problem:
        raise StreamStateError(f"{path}: checkpoint field {problem}")
    try:
        snapshot = base64.b64decode(document["snapshot"], validate=True)
    except ValueError as exc:
        raise StreamStateError(f"{path}: checkpoint field 'snapshot' is not base64 ({exc})") from exc
    return StreamState(
        bundle=document["bundle"],
        source=document["source"],
        position=document["position"],
        snapshot=snapshot,
        tracker=document["tracker"],
        alerts=document["alerts"],
        outputs=document["outputs"],
        live=document["live"],
    )


def _digest(document: dict) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shape_problem(document: dict) -> str | None:
    """What is wrong with the document's fields, or None (the schema of the module docstring)."""
    expected = {
        "bundle": str,
        "source": dict,
        "position": int,
        "outputs": dict,
        "tracker": dict,
        "alerts": list,
        "live": dict,
    }
    for name, kind in {**expected, "snapshot": str}.items():
        if name not in document:
            return f"{name!r} is missing"
        if not isinstance(document[name], kind) or (kind is int and not _is_int(document[name])):
            return f"{name!r} is not a {kind.__name__}"
    if document["position"] < 0:
        return f"'position' {document['position']} is negative"
    for name, output in document["outputs"].items():
        if name not in OUTPUT_NAMES:
            return f"'outputs' names {name!r}, not one of {OUTPUT_NAMES}"
        if not (
            isinstance(output, dict)
            and set(output) == {"bytes", "sha256"}
            and _is_int(output["bytes"])
            and output["bytes"] >= 0
            and isinstance(output["sha256"], str)
        ):
            return f"'outputs.{name}' is not {{'bytes': n >= 0, 'sha256': hex}}"
    for k, alert in enumerate(document["alerts"]):
        if not isinstance(alert, dict) or set(alert) != set(ALERT_FIELDS):
            return f"'alerts[{k}]' does not have the fields {sorted(ALERT_FIELDS)}"
        for name, kind in ALERT_FIELDS.items():
            if not isinstance(alert[name], kind) or (kind is int and not _is_int(alert[name])):
                return f"'alerts[{k}].{name}' has the wrong type"
    return None
