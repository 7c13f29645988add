"""The two paths of compile/tree_codegen.py side by side: the portable path's branches and the AVX2 bitmask path
(compile/tree_bitmask.py), on the same models, from the C driver of the benchmarks on 10,000 distinct fleet rows,
one thread.

    python scripts/measure_bitmask_trees.py

Three LightGBM models of the benchmark's shapes, trained on generated fleet data (machine status categorical):
binary, 100 trees of 31 leaves; multiclass (5 failure types), 100 rounds of 31 leaves; binary, 500 trees of 63
leaves. The bitmask path tests every node of every tree for every row, without a branch; the portable path tests
one path per tree and pays for the branches the predictor misses. The last column is what those misses cost: the
portable path on 10 of the rows, each repeated 1,000 times in a row, where the predictor misses almost nothing.
Both paths are checked against LightGBM (max |difference| 0). Needs a CPU with AVX2; prints a Markdown table.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from pathlib import Path

import lightgbm as lgb
import numpy as np

from bench.suite import DRIVER_SOURCE, LARGE_PARAMS
from compile.binding import NativeModel
from compile.native import treelite_model
from compile.tree_codegen import build_forest_library
from engine.data.synthetic import FLEET_INTERVAL_S, generate
from engine.models.tasks import inputs_and_targets

# name -> (objective, trees per class, leaves)
SHAPES = {"binary, 100 x 31 leaves": ("binary", 100, 31), "5 classes, 100 x 31 leaves": ("multiclass", 100, 31),
          "binary, 500 x 63 leaves": ("binary", 500, 63)}  # fmt: skip


def _time(driver: Path, library: Path, inputs: Path, rows: int, columns: int) -> float:
    command = [str(driver), str(library), str(inputs), str(rows), str(columns), str(rows), "7"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["median_ns_per_row"]


def _model(objective: str, trees: int, leaves: int, X: np.ndarray, y: dict) -> lgb.Booster:
    params = dict(LARGE_PARAMS, num_leaves=leaves, objective=objective)
    if objective == "multiclass":
        params["num_class"] = 5
        labels = np.unique(np.asarray(y["failure_type"]), return_inverse=True)[1]
    else:
        labels = y["anomaly_flag"]
    return lgb.train(params, lgb.Dataset(X, labels, categorical_feature=[X.shape[1] - 1]), trees)


def main() -> None:
    if "avx2" not in Path("/proc/cpuinfo").read_text():
        raise SystemExit("this CPU has no AVX2")
    X, y = inputs_and_targets(generate(20_000, mode="fleet", seed=3, interval_s=FLEET_INTERVAL_S))
    test, _ = inputs_and_targets(generate(10_000, mode="fleet", seed=11, interval_s=FLEET_INTERVAL_S))
    test = np.ascontiguousarray(test)
    columns = ["model", "portable ns/row", "AVX2 ns/row", "AVX2 / portable", "max diff vs LightGBM"]
    print("| " + " | ".join([*columns, "portable, predictable rows"]) + " |")
    print("| --- " * (len(columns) + 1) + "|")
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        test.tofile(work / "inputs.f64")
        np.ascontiguousarray(np.repeat(test[:10], 1_000, axis=0)).tofile(work / "repeated.f64")
        driver = work / "driver"
        subprocess.run(["gcc", "-std=c99", "-O2", str(DRIVER_SOURCE), "-ldl", "-o", str(driver)], check=True)
        for k, (name, (objective, trees, leaves)) in enumerate(SHAPES.items()):
            booster = _model(objective, trees, leaves, X, y)
            model = treelite_model(booster.model_to_string().encode(), "lightgbm")
            times, diff = {}, 0.0
            for isa in ("portable", "avx2"):
                library = build_forest_library(model, work / f"{k}.{isa}.so", round_float32=False, isa=isa)
                times[isa] = _time(driver, library, work / "inputs.f64", *test.shape)
                loaded = NativeModel(library, hashlib.sha256(library.read_bytes()).hexdigest(), objective)
                expected = booster.predict(test)
                diff = max(diff, float(np.abs(loaded.predict(test).reshape(expected.shape) - expected).max()))
            easy = _time(driver, work / f"{k}.portable.so", work / "repeated.f64", *test.shape)
            ratio = times["avx2"] / times["portable"]
            cells = [name, f"{times['portable']:,.0f}", f"{times['avx2']:,.0f}", f"{ratio:.2f}x", f"{diff:.1e}"]
            print("| " + " | ".join([*cells, f"{easy:,.0f}"]) + " |")


if __name__ == "__main__":
    main()
