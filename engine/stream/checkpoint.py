"""The checkpoint file of ``iotengine stream --state FILE``: where a replay stopped and everything it knew.

One JSON document, written atomically (a temporary file, fsync, then rename), so a stream killed at any
moment leaves either the previous checkpoint or the new one, never half of one::

    format, version       "iotengine-stream-state", 1
    bundle                sha256 of the bundle's bundle.json: a checkpoint only resumes with its own models
    source                what is replayed (a file's path, size and sha256, or the generator's parameters)
    position              samples consumed: the next run starts at this row of the source, in arrival order
    outputs               bytes of the --scores and --alerts files that hold exactly the consumed rows
    tracker               the alert hysteresis of every machine (engine.stream.alerts.AlertTracker.state)
    alerts                every alert raised so far (for the summary's counts and precision/recall)
    snapshot, snapshot_sha256
                          the per-machine feature states (engine.features.batch snapshot format, Arrow IPC),
                          base64, and the sha256 of its bytes, checked before they are used

Nothing is pickled: every field is plain JSON, and the states are the feature stream's own format.
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
VERSION = 1


@dataclass
class StreamState:
    bundle: str
    source: dict
    position: int
    snapshot: bytes
    tracker: dict
    alerts: list[dict] = field(default_factory=list)
    outputs: dict[str, int] = field(default_factory=dict)


def write_state(path: str | os.PathLike, state: StreamState) -> None:
    """Write ``state`` to ``path`` atomically."""
    path = Path(path)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "bundle": state.bundle,
        "source": state.source,
        "position": int(state.position),
        "outputs": {name: int(size) for name, size in state.outputs.items()},
        "tracker": state.tracker,
        "alerts": state.alerts,
        "snapshot_sha256": hashlib.sha256(state.snapshot).hexdigest(),
        "snapshot": base64.b64encode(state.snapshot).decode("ascii"),
    }
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
    try:
        snapshot = base64.b64decode(document["snapshot"], validate=True)
        expected = document["snapshot_sha256"]
        position = int(document["position"])
        state = StreamState(
            bundle=str(document["bundle"]),
            source=dict(document["source"]),
            position=position,
            snapshot=snapshot,
            tracker=dict(document["tracker"]),
            alerts=list(document["alerts"]),
            outputs={str(k): int(v) for k, v in document["outputs"].items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StreamStateError(f"{path}: checkpoint field missing or malformed ({exc!r})") from exc
    if hashlib.sha256(snapshot).hexdigest() != expected:
        raise StreamStateError(f"{path}: the machine states do not match their sha256; refusing to resume from them")
    if position < 0:
        raise StreamStateError(f"{path}: position {position} is negative")
    return state
