"""Compile every tree model of a bundle with iotengine's own generator (compile/tree_codegen.py) and record it.

For each task, the chosen model (when it is a tree ensemble) and the task's LightGBM model become::

    iot/<set>/<task>.so      the shared library (gcc -O3 -ffp-contract=off; tl2cgen's ABI plus threads)
    iot/<set>/<task>.c       the generated C it was built from

listed with their sha256 in ``bundle.json``; the ``iot`` section records, per set and task, the library, the
source, the model family, whether inputs are rounded to float32 and the path built (``isa``: portable or avx2).
:func:`iot_models` opens them, each checked against its hash before it is loaded; ``Bundle.predict(backend="iot")``
scores with them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from compile.binding import NativeModel
from compile.errors import CompileError
from compile.tree_codegen import ISAS, compile_forest_source, forest_source
from engine.bundle.build_step import Built, run_build_step, tree_model
from engine.bundle.format import Bundle

__all__ = ["build_iot", "iot_models"]


def build_iot(path, *, isa: str = "portable", progress: Callable[[str], None] = print) -> Bundle:
    """Build the iotengine library of every tree model in the bundle at ``path``; returns the bundle reloaded.

    ``isa="avx2"`` adds the AVX2 path (compile/tree_bitmask.py) to every model it covers; the others are built
    portable, and each entry records which it got."""
    if isa not in ISAS:
        raise CompileError(f"isa must be one of {ISAS}, not {isa!r}")
    return run_build_step(path, "iot", lambda *args: _iot_library(*args, isa=isa), progress)


def _iot_library(bundle: Bundle, set_name: str, task: str, entry: dict, *, isa: str) -> Built | str:
    found = tree_model(bundle, entry)
    if isinstance(found, str):
        return found
    (model, round_float32), family = found, entry["family"]
    prefix = f"iot/{set_name}/{task}"
    try:
        source = forest_source(model, round_float32=round_float32, isa=isa)
        why = ""
    except CompileError as exc:  # a model the AVX2 path does not cover keeps the portable one
        if isa == "portable":
            raise
        isa, why = "portable", f" (portable: {exc})"
        source = forest_source(model, round_float32=round_float32)
    with tempfile.TemporaryDirectory() as work:
        library = compile_forest_source(source, Path(work) / "model.so", isa=isa).read_bytes()
    entry = {
        "library": f"{prefix}.so",
        "source": f"{prefix}.c",
        "family": family,
        "round_float32": round_float32,
        "trees": int(model.num_tree),
        "isa": isa,
    }
    files = {f"{prefix}.so": library, f"{prefix}.c": source.encode()}
    return Built(entry, f"{family}, {model.num_tree} trees, {isa}{why}, {len(library):,} bytes", files)


def iot_models(bundle: Bundle, set_name: str = "chosen") -> dict[str, NativeModel]:
    """The iotengine library of each compiled task in a set, loaded after its hash is checked."""
    section = bundle.manifest.get("iot")
    if not section:
        raise CompileError(f"{bundle.path}: no iotengine libraries; run `iotengine compile --bundle {bundle.path}`")
    return {
        task: NativeModel(
            bundle.path / entry["library"],
            bundle.files[entry["library"]],
            bundle.set_entries(set_name)[task]["kind"],
            link_in_numpy=entry["family"] == "hist_gradient_boosting",
        )
        for task, entry in section.get(set_name, {}).items()
    }
