"""Tree ensembles to native shared libraries: treelite model -> tl2cgen C sources
(:mod:`compile.tl2cgen_source`) -> gcc -> ``.so``.

Scikit-learn forests compare ``float32(x)`` with their thresholds, so for them the batch driver rounds every
input to float32 first (``IOT_ROUND_FLOAT32``); LightGBM and HistGradientBoosting compare float64.

The library is built with ``-std=c99 -O3 -ffp-contract=off`` (no fast-math: the output transform must give
LightGBM's bits); large models are split by tl2cgen into several translation units compiled in parallel.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import lightgbm as lgb
import treelite

from compile.errors import CompileError
from compile.tl2cgen_source import NativeSources

__all__ = ["CFLAGS", "TREE_FAMILIES", "build_library", "treelite_model"]

# The model families that are tree ensembles: treelite reads them, tl2cgen compiles them.
TREE_FAMILIES = ("lightgbm", "random_forest", "extra_trees", "hist_gradient_boosting")

CFLAGS = ("-std=c99", "-O3", "-fPIC", "-ffp-contract=off", "-fno-fast-math", "-Wall")


def treelite_model(data: bytes, family: str) -> treelite.Model:
    """The treelite model of a bundle model file (LightGBM text or a treelite checkpoint)."""
    if family == "lightgbm":
        return treelite.frontend.from_lightgbm(lgb.Booster(model_str=data.decode()))
    if family in TREE_FAMILIES:
        return treelite.Model.deserialize_bytes(data)
    raise CompileError(f"model family {family!r} is not a tree ensemble; it cannot be compiled to native code")


def build_library(
    sources: NativeSources,
    output: str | os.PathLike,
    *,
    compiler: str = "gcc",
    jobs: int = 2,
    cflags: tuple[str, ...] = CFLAGS,
    strip: bool = False,
) -> Path:
    """Compile the sources (in parallel) with ``cflags`` and link them into a shared library at ``output``
    (``strip``: without its symbol table, only the exported functions stay visible)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as build:
        objects = [Path(build) / (Path(name).stem + ".o") for name in sources.files]

        def compile_one(pair):
            source, obj = pair
            command = [compiler, *cflags, *sources.defines, "-c", str(sources.directory / source), "-o", str(obj)]
            return subprocess.run(command, capture_output=True, text=True)

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = pool.map(compile_one, zip(sources.files, objects, strict=True))
            for done, source in zip(results, sources.files, strict=True):
                if done.returncode != 0:
                    raise CompileError(f"{compiler} failed on {source}:\n{done.stderr[-2000:]}")
        temporary = output.with_suffix(".tmp.so")
        link = subprocess.run(
            [
                compiler,
                "-shared",
                "-pthread",
                *(["-s"] if strip else []),
                "-o",
                str(temporary),
                *map(str, objects),
                "-lm",
            ],
            capture_output=True,
            text=True,
        )
        if link.returncode != 0:
            raise CompileError(f"{compiler} could not link {output.name}:\n{link.stderr[-2000:]}")
        temporary.replace(output)
    return output
