"""The shape of ``bundle.json``, checked before anything in it is used, and its own digest.

:func:`check_manifest` refuses a manifest whose fields have the wrong type or range (a task entry without its
file, a family no loader knows, a threshold outside [0, 1], columns outside the 68 inputs, an edge section that
does not name the edge library) with one :class:`engine.errors.BundleError` naming the field, instead of a
KeyError or a library's traceback later. :func:`engine.bundle.files.manifest_digest` is the sha256 of the
manifest without its ``manifest_sha256`` field (canonical JSON): :func:`engine.bundle.files.write_manifest` records
it and :meth:`engine.bundle.format.Bundle.load` refuses a manifest edited after it was written (a threshold changed by
hand would no longer match the one compiled into the edge library).
"""

from __future__ import annotations

import re

from engine.errors import BundleError
from engine.features.inputs import MAX_UTC_OFFSET_MINUTES
from engine.models.model_files import TABULAR_FAMILIES, TREELITE_FAMILIES
from engine.models.tasks import INPUT_COLUMNS, TASK_BY_NAME
from kernels.names import FAILURE_TYPES, RAW

__all__ = ["EDGE_LIBRARY", "check_manifest"]

EDGE_LIBRARY = "edge/libiotengine.so"
FAMILIES = ("lightgbm", *TREELITE_FAMILIES, *TABULAR_FAMILIES)
SHA256 = re.compile(r"[0-9a-f]{64}")


def check_manifest(manifest, where) -> None:
    """Raise :class:`BundleError` naming the first field of ``manifest`` that is missing or malformed."""
    if not isinstance(manifest, dict):
        raise BundleError(f"{where}: a manifest is a JSON object, not a {type(manifest).__name__}")
    files = _field(manifest, "files", dict, where)
    for relative, digest in files.items():
        if not (isinstance(relative, str) and isinstance(digest, str) and SHA256.fullmatch(digest)):
            raise BundleError(f"{where}: files[{relative!r}] is not a sha256")
    offset = _field(manifest, "utc_offset_minutes", int, where)
    if isinstance(offset, bool) or not -MAX_UTC_OFFSET_MINUTES <= offset <= MAX_UTC_OFFSET_MINUTES:
        raise BundleError(f"{where}: utc_offset_minutes {offset!r} is not within one day")
    tasks = _field(manifest, "tasks", dict, where)  # empty in a bundle of the detector alone
    for name, entry in tasks.items():
        if name not in TASK_BY_NAME:
            raise BundleError(f"{where}: unknown task {name!r}")
        _check_entry(entry, TASK_BY_NAME[name].kind, files, f"tasks.{name}", where)
    for set_name, entries in _field(manifest, "model_sets", dict, where).items():
        if not isinstance(entries, dict):
            raise BundleError(f"{where}: model_sets.{set_name} is not an object")
        for name, entry in entries.items():
            kind = TASK_BY_NAME[name].kind if name in TASK_BY_NAME else "regression" if name in RAW else None
            if kind is None:
                raise BundleError(f"{where}: model_sets.{set_name} names unknown model {name!r}")
            _check_entry(entry, kind, files, f"model_sets.{set_name}.{name}", where)
    unsupervised = manifest.get("unsupervised")
    if unsupervised is not None:
        _check_unsupervised(unsupervised, where)
    edge = manifest.get("edge")
    if edge is not None:
        _check_edge(edge, files, manifest, where)


def _field(mapping: dict, name: str, kind: type, where, prefix: str = ""):
    if name not in mapping:
        raise BundleError(f"{where}: field {prefix}{name!r} is missing")
    value = mapping[name]
    if not isinstance(value, kind):
        expected = " or ".join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__
        raise BundleError(f"{where}: field {prefix}{name!r} has the wrong type (expected {expected})")
    return value


def _check_entry(entry, kind: str, files: dict, name: str, where) -> None:
    if not isinstance(entry, dict):
        raise BundleError(f"{where}: {name} is not an object")
    file = _field(entry, "file", str, where, f"{name}.")
    if file not in files:
        raise BundleError(f"{where}: {name} uses {file}, which has no sha256 in 'files'")
    family = _field(entry, "family", str, where, f"{name}.")
    if family not in FAMILIES:
        raise BundleError(f"{where}: {name}.family {family!r} is not one of {FAMILIES}")
    threshold = entry.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0
    ):
        raise BundleError(f"{where}: {name}.threshold {threshold!r} is not a probability in [0, 1]")
    columns = entry.get("columns")
    if columns is not None and not _indices(columns, len(INPUT_COLUMNS) + len(RAW) * 2):
        raise BundleError(f"{where}: {name}.columns must be distinct input indices, got {columns!r}")
    if kind == "multiclass":
        indices = entry.get("class_indices")
        if not _indices(indices, len(FAILURE_TYPES)) or not indices:
            raise BundleError(f"{where}: {name}.class_indices must be distinct indices into {FAILURE_TYPES}")


def _indices(values, limit: int) -> bool:
    return (
        isinstance(values, list)
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < limit for v in values)
        and len(set(values)) == len(values)
    )


def _check_unsupervised(section, where) -> None:
    if not isinstance(section, dict):
        raise BundleError(f"{where}: 'unsupervised' is not an object")
    for name in ("center", "scale"):
        values = _field(section, name, list, where, "unsupervised.")
        if len(values) != len(RAW) or not all(isinstance(v, (int, float)) for v in values):
            raise BundleError(f"{where}: unsupervised.{name} must be {len(RAW)} numbers")
    threshold = _field(section, "threshold", (int, float), where, "unsupervised.")
    if not threshold > 0.0:
        raise BundleError(f"{where}: unsupervised.threshold {threshold!r} must be a positive number")


def _check_edge(section, files: dict, manifest: dict, where) -> None:
    if not isinstance(section, dict):
        raise BundleError(f"{where}: 'edge' is not an object")
    library = _field(section, "library", str, where, "edge.")
    if library != EDGE_LIBRARY or library not in files:
        raise BundleError(f"{where}: edge.library must be {EDGE_LIBRARY}, listed in 'files'; got {library!r}")
    models = _field(section, "models", str, where, "edge.")
    if models != "chosen" and models not in manifest["model_sets"]:
        raise BundleError(f"{where}: edge.models {models!r} is not a model set of the bundle")
    _field(section, "trees", str, where, "edge.")
    state_bytes = _field(section, "state_bytes", int, where, "edge.")
    if state_bytes <= 0:
        raise BundleError(f"{where}: edge.state_bytes {state_bytes} is not a size")
    _field(section, "tasks", dict, where, "edge.")
    sources = _field(section, "library_sources", list, where, "edge.")
    if not all(isinstance(s, str) for s in sources):
        raise BundleError(f"{where}: edge.library_sources must be file names")
    entries = manifest["tasks"] if models == "chosen" else manifest["model_sets"][models]
    compiled = section.get("thresholds")
    if compiled is not None:
        stated = {name: e.get("threshold") for name, e in entries.items() if e.get("threshold") is not None}
        if compiled != stated:
            raise BundleError(
                f"{where}: the edge library was compiled with the thresholds {compiled}, the manifest says {stated}"
            )
