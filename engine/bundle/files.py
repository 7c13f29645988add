"""The files of a bundle on disk: their sha256, and ``bundle.json`` written in one step under a lock."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

__all__ = ["DIGEST_FIELD", "MANIFEST", "MANIFEST_LOCK", "manifest_digest", "sha256_of", "write_file", "write_manifest"]

MANIFEST = "bundle.json"
DIGEST_FIELD = "manifest_sha256"  # the manifest's own digest: an edit made after writing is refused
# Build steps of one bundle may run side by side (engine.pipeline.run) and each adds files to the manifest.
MANIFEST_LOCK = threading.Lock()


def sha256_of(data: bytes) -> str:
    """The hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def manifest_digest(manifest: dict) -> str:
    """sha256 of ``manifest`` without :data:`DIGEST_FIELD`, as canonical JSON (sorted keys, no spaces)."""
    body = {k: v for k, v in manifest.items() if k != DIGEST_FIELD}
    return sha256_of(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def write_manifest(folder: Path, manifest: dict) -> None:
    """``bundle.json`` with its own digest, replaced in one step, so a reader never sees half of it."""
    temporary = folder / f".{MANIFEST}.{os.getpid()}.{threading.get_ident()}.tmp"
    manifest = {**{k: v for k, v in manifest.items() if k != DIGEST_FIELD}, DIGEST_FIELD: manifest_digest(manifest)}
    temporary.write_text(json.dumps(manifest, indent=1) + "\n")
    temporary.replace(folder / MANIFEST)


def write_file(path: Path, data: bytes) -> str:
    """Write ``data`` at ``path`` (making its folder) and return its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return sha256_of(data)
