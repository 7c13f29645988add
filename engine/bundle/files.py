"""The files of a bundle on disk: their sha256, and ``bundle.json`` written in one step under a lock."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

__all__ = ["MANIFEST", "MANIFEST_LOCK", "sha256_of", "write_file", "write_manifest"]

MANIFEST = "bundle.json"
# Build steps of one bundle may run side by side (engine.pipeline.run) and each adds files to the manifest.
MANIFEST_LOCK = threading.Lock()


def sha256_of(data: bytes) -> str:
    """The hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def write_manifest(folder: Path, manifest: dict) -> None:
    """``bundle.json`` replaced in one step, so a reader never sees half of it."""
    temporary = folder / f".{MANIFEST}.{os.getpid()}.{threading.get_ident()}.tmp"
    temporary.write_text(json.dumps(manifest, indent=1) + "\n")
    temporary.replace(folder / MANIFEST)


def write_file(path: Path, data: bytes) -> str:
    """Write ``data`` at ``path`` (making its folder) and return its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return sha256_of(data)
