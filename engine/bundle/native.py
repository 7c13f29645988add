"""Compile every tree model of a bundle to a native library and record it, with its sources, in the bundle.

For each task, the chosen model (when it is a tree ensemble) and the task's LightGBM model (the ``lightgbm``
model set), and each regressor of the unsupervised detector (the ``unsupervised`` set, by sensor) become::

    native/<set>/<task>.so          the shared library (gcc, -O3, -ffp-contract=off)
    native/<set>/<task>/*.c, *.h    the generated C sources it was built from

all listed with their sha256 in ``bundle.json`` under ``files``; the ``native`` section records, per set and
task, the library, the sources, the model family and whether inputs are rounded to float32.
:func:`native_models` opens them, each checked against its hash before it is loaded.

Examples
--------
>>> from engine.bundle.build_step import BUILD_SETS
>>> BUILD_SETS
('chosen', 'lightgbm', 'unsupervised')
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from compile.binding import NativeModel
from compile.errors import CompileError
from compile.native import build_library
from compile.tl2cgen_source import generate_sources
from engine.bundle.build_step import Built, run_build_step, tree_model
from engine.bundle.format import Bundle

__all__ = ["compile_bundle", "native_models"]

# Build choices, measured with scripts/measure_native_options.py against LightGBM's predictions and each other:
# the blocked driver and the folded NaN tests of compile/tl2cgen_source.py are in every build; quantized thresholds
# (tl2cgen quantize=1: a binary search per feature per row before the trees) were slower for every model, and
# dropping the training-count branch hints, -O2 or -march=native did not help; none of them is used.


def compile_bundle(path, *, progress: Callable[[str], None] = print) -> Bundle:
    """Build the native library of every tree model in the bundle at ``path``; returns the bundle reloaded."""
    return run_build_step(path, "native", _native_library, progress)


def _native_library(bundle: Bundle, set_name: str, task: str, entry: dict) -> Built | str:
    found = tree_model(bundle, entry)
    if isinstance(found, str):
        return found
    (model, round_float32), family = found, entry["family"]
    prefix = f"native/{set_name}/{task}"
    with tempfile.TemporaryDirectory() as work:
        sources = generate_sources(model, Path(work) / "src", round_float32=round_float32)
        library = build_library(sources, Path(work) / "model.so").read_bytes()
        names = sorted(p.name for p in sources.directory.iterdir() if p.suffix in (".c", ".h", ".json"))
        files = {f"{prefix}.so": library, **{f"{prefix}/{n}": (sources.directory / n).read_bytes() for n in names}}
    entry = {
        "library": f"{prefix}.so",
        "sources": [f"{prefix}/{name}" for name in names],
        "family": family,
        "round_float32": round_float32,
        "trees": int(model.num_tree),
        "defines": list(sources.defines),
    }
    return Built(entry, f"{family}, {model.num_tree} trees, {len(library):,} bytes", files)


def native_models(bundle: Bundle, set_name: str = "chosen") -> dict[str, NativeModel]:
    """The native library of each compiled task in a set, loaded after its hash is checked."""
    section = bundle.native_sets
    if not section:
        raise CompileError(f"{bundle.path}: no native libraries; run `iotengine compile --bundle {bundle.path}`")
    out = {}
    for task, entry in section.get(set_name, {}).items():
        relative = entry["library"]
        out[task] = NativeModel(
            bundle.path / relative,
            bundle.files[relative],
            bundle.set_entries(set_name)[task]["kind"],
            link_in_numpy=entry["family"] == "hist_gradient_boosting",
        )
    return out
