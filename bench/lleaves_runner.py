"""Run inside the lleaves environment (see bench/lleaves_env.py); imports nothing from iotengine.

    python lleaves_runner.py MODEL.txt INPUTS.npy OUT_DIR --batches 1,1000 --repeats 5 --single-rows 200 \
        [--cache-dir DIR] [--compile-only]

Compiles the LightGBM model with lleaves, writes ``predictions.npy`` for all rows and ``timings.json``: per
batch, median and p99 ns per row, single-threaded (``n_jobs=1``), timed the same way as the suite's Python
runtimes, plus the size of the compiled object. With ``--cache-dir`` the object is kept there under the sha256 of
the model text, lleaves' version and the host CPU LLVM compiles for, so the same model is compiled once per
machine (LLVM takes 20 s for a 500-tree model); ``--compile-only`` stops after compiling.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import statistics
import time
from pathlib import Path

import lleaves
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("inputs")
    parser.add_argument("out", type=Path)
    parser.add_argument("--batches", default="1,1000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--single-rows", type=int, default=200)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--compile-only", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = lleaves.Model(model_file=args.model)
    started = time.perf_counter()
    cache = args.out / "lleaves_model.so" if args.cache_dir is None else _cache_path(args.model, args.cache_dir)
    cached = cache.is_file()
    if cached:
        model.compile(cache=str(cache))
    else:  # compiled under a name of its own, then renamed: another process never loads half a file
        partial = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        model.compile(cache=str(partial))
        os.replace(partial, cache)
    compile_s = time.perf_counter() - started
    if args.compile_only:
        return
    X = np.load(args.inputs)
    np.save(args.out / "predictions.npy", model.predict(X, n_jobs=1))
    timings = {"compile_s": compile_s, "cached": cached, "size_bytes": cache.stat().st_size, "batches": {}}
    for batch in (int(b) for b in args.batches.split(",")):
        times = []
        if batch == 1:
            rows = X[: args.single_rows]
            for _ in range(args.repeats):
                for i in range(len(rows)):
                    row = rows[i : i + 1]
                    t = time.perf_counter_ns()
                    model.predict(row, n_jobs=1)
                    times.append(time.perf_counter_ns() - t)
        else:
            block = X[:batch]
            model.predict(block, n_jobs=1)
            for _ in range(args.repeats):
                t = time.perf_counter_ns()
                model.predict(block, n_jobs=1)
                times.append((time.perf_counter_ns() - t) / batch)
        times.sort()
        timings["batches"][str(batch)] = {
            "median_ns_per_row": statistics.median(times),
            "p99_ns_per_row": times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
        }
    (args.out / "timings.json").write_text(json.dumps(timings))


def _cache_path(model: str, directory: Path) -> Path:
    import llvmlite.binding as llvm

    key = hashlib.sha256(Path(model).read_bytes())
    version = importlib.metadata.version("lleaves")
    key.update(f"lleaves {version} {llvm.get_host_cpu_name()} {llvm.get_host_cpu_features().flatten()}".encode())
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{key.hexdigest()}.so"


if __name__ == "__main__":
    main()
