"""The edge library of a bundle, built into the bundle: ``edge/libiotengine.so`` and its C sources.

``iotengine compile`` runs :func:`build_edge` after the native libraries. It exports the C tree of the chosen
models (:func:`export_bundle_c`: :func:`compile.edge.export_c` of the bundle's :func:`edge_spec`), builds the
shared library with the exported Makefile (gcc, -O2, warnings as errors) and records every file with its sha256
in ``bundle.json``; the ``edge`` section names the library, the sources, the model set, the tree form and the
state size. :func:`edge_library` opens it after checking its hash; :class:`engine.stream.scorer.StreamScorer`
scores through it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from compile.edge import EdgeTree, export_c, make
from compile.edge_binding import EdgeLibrary
from compile.edge_spec import DETECTOR_TASKS, EdgeDetector, EdgeModel, EdgeSpec
from compile.errors import CompileError
from engine.bundle.format import Bundle
from engine.bundle.manifest import EDGE_LIBRARY
from engine.bundle.writer import UNSUPERVISED_SET
from engine.models.tasks import TASKS
from kernels.names import RAW

__all__ = ["build_edge", "edge_library", "edge_spec", "export_bundle_c"]


def edge_spec(bundle: Bundle, models: str = "chosen") -> EdgeSpec:
    """What the edge exporter needs of ``bundle``'s ``models`` set: each task's verified model bytes and how to
    read them, the unsupervised detector's, the UTC offset and the bundle's description."""
    entries = bundle.set_entries(models)
    edge_models = []
    for task in TASKS:
        if task.name not in entries:
            continue  # EdgeSpec names the tasks that are missing
        entry = entries[task.name]
        edge_models.append(
            EdgeModel(
                task=task.name,
                kind=task.kind,
                family=entry["family"],
                data=bundle.verified_bytes(entry["file"]),
                columns=None if entry.get("columns") is None else tuple(int(c) for c in entry["columns"]),
                threshold=None if entry.get("threshold") is None else float(entry["threshold"]),
                class_indices=tuple(int(c) for c in entry["class_indices"]) if "class_indices" in entry else None,
            )
        )
    return EdgeSpec(
        name=bundle.path.name,
        source=str(bundle.path),
        created=bundle.created,
        feature_spec=bundle.feature_spec,
        model_set=models,
        models=tuple(edge_models),
        utc_offset_minutes=bundle.utc_offset_minutes,
        detector=_detector(bundle),
    )


def _detector(bundle: Bundle) -> EdgeDetector | None:
    """The bundle's unsupervised detector as the edge exporter needs it (the same whatever the task model set)."""
    section = bundle.unsupervised
    if section is None:
        return None
    entries = bundle.set_entries(UNSUPERVISED_SET)
    models = tuple(
        EdgeModel(
            task=task,
            kind="regression",
            family=entries[sensor]["family"],
            data=bundle.verified_bytes(entries[sensor]["file"]),
            columns=tuple(int(c) for c in entries[sensor]["columns"]),
        )
        for task, sensor in zip(DETECTOR_TASKS, RAW, strict=True)
    )
    return EdgeDetector(
        models=models,
        center=tuple(float(v) for v in section["center"]),
        scale=tuple(float(v) for v in section["scale"]),
        threshold=float(section["threshold"]),
    )


def export_bundle_c(
    bundle: Bundle | str,
    out,
    *,
    models: str = "chosen",
    trees: str = "iot",
    real: str = "double",
    target: str = "host",
    progress: Callable[[str], None] = print,
) -> EdgeTree:
    """The edge C source tree of a bundle (or bundle path) in ``out`` (``iotengine export-c``), for ``target``
    with iot_real ``real`` (:func:`compile.edge.export_c`)."""
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    return export_c(edge_spec(bundle, models), out, trees=trees, real=real, target=target, progress=progress)


def build_edge(
    path,
    *,
    models: str = "chosen",
    trees: str = "iot",
    directory=None,
    targets: tuple[str, ...] = ("libiotengine.so",),
    progress: Callable[[str], None] = print,
) -> Bundle:
    """Export, build and record the edge library of the bundle at ``path``; returns the bundle reloaded.

    ``directory`` keeps the exported tree and its build (default: a temporary folder); ``targets`` are the make
    targets built there (``libiotengine.so`` always).
    """
    bundle = Bundle.load(path)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        folder = Path(directory) if directory is not None else Path(work) / "src"
        tree = export_bundle_c(bundle, folder, models=models, trees=trees, progress=progress)
        make(tree.directory, "libiotengine.so", *targets, compiler="gcc", opt="-O2")
        library = (tree.directory / "libiotengine.so").read_bytes()
        sources = {
            f"edge/src/{p.name}": p.read_bytes()
            for p in sorted(tree.directory.iterdir())
            if p.suffix in (".c", ".h", ".json") or p.name in ("Makefile", "CMakeLists.txt")
        }
        state_size = EdgeLibrary(tree.directory / "libiotengine.so", None).state_size
    files = {EDGE_LIBRARY: library, **sources}
    section = {
        "library": EDGE_LIBRARY,
        "sources": sorted(sources),
        "library_sources": list(tree.library_sources),
        "models": models,
        "trees": trees,
        "state_bytes": state_size,
        "tasks": tree.models,
        # what the library compiled in (IOT_THRESHOLD_*): engine.bundle.manifest checks the manifest agrees
        "thresholds": {
            name: entry["threshold"]
            for name, entry in bundle.set_entries(models).items()
            if entry.get("threshold") is not None
        },
    }
    progress(
        f"  edge library: {len(library):,} bytes, iot_state {state_size} bytes, built in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return bundle.add_files(files, section="edge", entry=section)


def edge_library(bundle: Bundle) -> EdgeLibrary:
    """The bundle's edge library, loaded after its hash is checked."""
    edge = bundle.edge
    if edge is None:
        raise CompileError(f"{bundle.path}: no edge library; run `iotengine compile --bundle {bundle.path}`")
    return EdgeLibrary(bundle.path / edge.library, edge.sha256)
