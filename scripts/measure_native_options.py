"""Which build of the native tree libraries is fastest? Branch annotation and hints, quantized thresholds, flags.

Trains the five LightGBM task models on generated fleet data (or takes the ``lightgbm`` set of a bundle), builds
each model once per variant, checks every variant against LightGBM's predictions (max |diff| must stay <= 1e-12),
then times them interleaved, so machine noise hits every variant alike:

- batch: ``iot_predict`` over ``--batch`` held-out rows through cffi, ns per row (median of ``--repeats``);
- single: ``predict_row`` through cffi on 2,000 rows, ns per call (median), which includes cffi's overhead.

Writes a Markdown and a CSV table; ratios are against the ``O3`` variant measured in the same run.

    python scripts/measure_native_options.py --out /tmp/native_options
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from compile.binding import NativeModel
from compile.native import CFLAGS, build_library, treelite_model
from compile.tl2cgen_source import annotate_branches, generate_sources
from engine.data.synthetic import FLEET_INTERVAL_S, generate
from engine.models.cross_validation import fit_model
from engine.models.tasks import TASKS, inputs_and_targets
from engine.models.zoo import candidates
from engine.report.markdown import markdown_table
from engine.report.tables import write_csv

BASE_FLAGS = tuple(flag for flag in CFLAGS if flag != "-O3")
VARIANTS = {
    "O3": {"flags": ("-O3",)},
    "O2": {"flags": ("-O2",)},
    "O3 annotate": {"flags": ("-O3",), "annotate": True},
    "O3 quantize": {"flags": ("-O3",), "quantize": True},
    "O3 annotate quantize": {"flags": ("-O3",), "annotate": True, "quantize": True},
    "O3 march=native": {"flags": ("-O3", "-march=native")},
    "O3 no branch hints": {"flags": ("-O3",), "no_hints": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    X, y = inputs_and_targets(generate(args.rows, mode="fleet", seed=7, interval_s=FLEET_INTERVAL_S))
    train, held_out = X[: args.rows // 3], X[args.rows // 3 :][: args.batch]
    boosters = {
        task.name: fit_model(candidates(task.kind)["lightgbm"], train, y[task.name][: args.rows // 3]).booster_
        for task in tqdm(TASKS, desc="train LightGBM")
    }
    work = Path(tempfile.mkdtemp(prefix="native_options_"))
    libraries: dict[tuple[str, str], NativeModel] = {}
    built: dict[tuple[str, str], dict] = {}
    for task, booster in tqdm(boosters.items(), desc="build variants"):
        model = treelite_model(booster.model_to_string().encode(), "lightgbm")
        annotation = annotate_branches(model, train, work / f"{task}.annotation.json")
        expected = booster.predict(held_out)
        for name, variant in VARIANTS.items():
            folder = work / task / name.replace(" ", "_").replace("=", "_")
            started = time.perf_counter()
            sources = generate_sources(
                model,
                folder / "src",
                round_float32=False,
                quantize=variant.get("quantize", False),
                annotation=annotation if variant.get("annotate") else None,
            )
            if variant.get("no_hints"):  # tl2cgen marks branches LIKELY/UNLIKELY from LightGBM's training counts
                for file in sources.files:
                    path = sources.directory / file
                    path.write_text(path.read_text().replace("UNLIKELY( ", "( ").replace("LIKELY( ", "( "))
            library = build_library(sources, folder / "model.so", cflags=(*variant["flags"], *BASE_FLAGS))
            seconds = time.perf_counter() - started
            native = NativeModel(library, hashlib.sha256(library.read_bytes()).hexdigest(), task_kind(task))
            diff = float(np.abs(native.predict(held_out) - expected).max())
            if diff > 1e-12:
                raise SystemExit(f"{task} / {name}: differs from LightGBM by {diff}")
            libraries[task, name] = native
            built[task, name] = {"build_s": seconds, "bytes": library.stat().st_size, "max_abs_diff": diff}

    batch_ns: dict[tuple[str, str], list[float]] = {key: [] for key in libraries}
    single_ns: dict[tuple[str, str], list[float]] = {key: [] for key in libraries}
    rows = held_out[:2_000]
    for _ in tqdm(range(args.repeats), desc="time variants"):
        for key, native in libraries.items():
            started = time.perf_counter_ns()
            native.predict(held_out)
            batch_ns[key].append((time.perf_counter_ns() - started) / len(held_out))
            started = time.perf_counter_ns()
            for x in rows:
                native.predict_row(x)
            single_ns[key].append((time.perf_counter_ns() - started) / len(rows))

    records = []
    for (task, name), info in built.items():
        base_batch = statistics.median(batch_ns[task, "O3"])
        base_single = statistics.median(single_ns[task, "O3"])
        batch = statistics.median(batch_ns[task, name])
        single = statistics.median(single_ns[task, name])
        records.append(
            {
                "task": task,
                "variant": name,
                "trees": boosters[task].num_trees(),
                "batch_ns_per_row": round(batch, 1),
                "batch_speedup_vs_O3": round(base_batch / batch, 3),
                "single_ns_per_call": round(single, 1),
                "single_speedup_vs_O3": round(base_single / single, 3),
                "library_bytes": info["bytes"],
                "build_s": round(info["build_s"], 2),
                "max_abs_diff": info["max_abs_diff"],
            }
        )
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "native_options.csv", records, digits=None)
    header = list(records[0])
    lines = markdown_table(header, [[r[h] for h in header] for r in records])
    (args.out / "native_options.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def task_kind(name: str) -> str:
    return next(task.kind for task in TASKS if task.name == name)


if __name__ == "__main__":
    main()
