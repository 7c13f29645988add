"""The edge library of a bundle, built into the bundle: ``edge/libiotengine.so`` and its C sources.

``iotengine compile`` runs :func:`build_edge` after the native libraries: it exports the C tree of the chosen
models (:func:`compile.edge.export_c`), builds the shared library with the exported Makefile (gcc, -O2,
warnings as errors) and records every file with its sha256 in ``bundle.json``; the ``edge`` section names the
library, the sources, the model set, the tree form and the state size. :func:`edge_library` opens it after
checking its hash; :class:`engine.stream.scorer.StreamScorer` scores through it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from compile.edge import export_c, make
from compile.edge_binding import EdgeLibrary
from compile.errors import CompileError
from engine.bundle.format import Bundle

__all__ = ["build_edge", "edge_library"]

EDGE_LIBRARY = "edge/libiotengine.so"


def build_edge(
    path,
    *,
    models: str = "chosen",
    trees: str = "tl2cgen",
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
        tree = export_c(bundle, folder, models=models, trees=trees, progress=progress)
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
    }
    progress(
        f"  edge library: {len(library):,} bytes, iot_state {state_size} bytes, built in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return bundle.add_files(files, section="edge", entry=section)


def edge_library(bundle: Bundle) -> EdgeLibrary:
    """The bundle's edge library, loaded after its hash is checked."""
    section = bundle.manifest.get("edge")
    if section is None:
        raise CompileError(f"{bundle.path}: no edge library; run `iotengine compile --bundle {bundle.path}`")
    relative = section["library"]
    return EdgeLibrary(bundle.path / relative, bundle.files[relative])
