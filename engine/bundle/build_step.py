"""The shape every per-model build step of ``iotengine compile`` shares: load the bundle, build something for each
task of the chosen and the LightGBM model sets, add the files and one manifest section, reload.

A step gives :func:`run_build_step` a function of (bundle, set, task, manifest entry) that returns a
:class:`Built` (files, the task's entry in the section, a line for the progress) or a string saying why the model
has nothing to build.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from compile.native import TREE_FAMILIES, treelite_model
from engine.bundle.format import Bundle

__all__ = ["BUILD_SETS", "Built", "run_build_step", "tree_model"]

# The model sets that get native libraries and ONNX exports: the chosen models, the LightGBM ones (which the
# benchmarks compare across runtimes) and the unsupervised detector's regressors (when the bundle has them); the
# compact set is LightGBM on fewer columns and stays interpreted.
BUILD_SETS = ("chosen", "lightgbm", "unsupervised")


@dataclass
class Built:
    """What a build step made of one model."""

    entry: dict
    summary: str
    files: dict[str, bytes] = field(default_factory=dict)


def run_build_step(
    path,
    section: str,
    build: Callable[[Bundle, str, str, dict], Built | str],
    progress: Callable[[str], None],
) -> Bundle:
    """Run ``build`` on every model of :data:`BUILD_SETS` of the bundle at ``path``; the manifest section
    ``section`` maps set -> task -> entry. Returns the bundle reloaded."""
    bundle = Bundle.load(path)
    files: dict[str, bytes] = {}
    entries: dict[str, dict] = {}
    for set_name in BUILD_SETS:
        if set_name != "chosen" and set_name not in bundle.manifest.get("model_sets", {}):
            continue
        entries[set_name] = {}
        for task, entry in bundle.set_entries(set_name).items():
            started = time.perf_counter()
            built = build(bundle, set_name, task, entry)
            if isinstance(built, str):
                progress(f"  {section} {set_name}/{task}: {built}")
                continue
            files.update(built.files)
            entries[set_name][task] = built.entry
            progress(f"  {section} {set_name}/{task}: {built.summary}, {time.perf_counter() - started:.1f} s")
    return bundle.add_files(files, section=section, entry=entries)


def tree_model(bundle: Bundle, entry: dict):
    """``(treelite model, round_float32)`` of a tree ensemble's manifest entry (scikit-learn's forests compare
    float32 inputs), or a string saying why the model is not one."""
    family = entry["family"]
    if family not in TREE_FAMILIES:
        return f"{family} is not a tree ensemble; stays in numpy"
    return treelite_model(bundle.verified_bytes(entry["file"]), family), family in ("random_forest", "extra_trees")
