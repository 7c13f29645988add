"""Measure the C edge library of a bundle: sizes (-Os objects, `size`), C timings over >= 1M samples, and the
Python paths beside them, for several model sets and tree forms. Prints Markdown tables; writes edge_measure.json.

    python scripts/measure_edge.py --bundle artifacts/train/bundle --out /tmp/edge_measure [--samples 1000000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.edge import c_bench, library_sizes, python_paths, write_samples
from compile.edge import make
from engine.bundle.edge import build_edge, export_bundle_c
from engine.bundle.format import Bundle
from engine.data.synthetic import FLEET_INTERVAL_S, generate
from kernels.state import allocate
from kernels.step import drive

CONFIGS = (("chosen", "iot"), ("lightgbm", "iot"), ("lightgbm", "tl2cgen"), ("lightgbm", "uint8"), ("compact", "iot"))


def numba_kernel_ns(fleet, repeats: int = 7) -> float:
    """The Numba kernel's batch driver, ns per sample (the C kernel's counterpart)."""
    from engine.features.inputs import telemetry_columns

    ids, stamps, sensors = telemetry_columns(fleet)
    _, slots = np.unique(ids, return_inverse=True)
    slots = slots.astype(np.int64)
    order = np.arange(len(ids), dtype=np.int64)
    out = np.empty((len(ids), 67))
    status = np.zeros(len(ids), dtype=np.int8)
    times = []
    for _ in range(repeats):
        fstate, istate = allocate(int(slots.max()) + 1)
        started = time.perf_counter_ns()
        drive(fstate, istate, order, slots, stamps, sensors, 0, out, status)
        times.append((time.perf_counter_ns() - started) / len(ids))
    return float(np.median(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--samples", type=int, default=1_000_000)
    args = parser.parse_args()
    bundle = Bundle.load(args.bundle)
    if "edge" not in bundle.manifest:  # the Python paths score through the bundle's own edge library
        bundle = build_edge(args.bundle, progress=lambda _: None)
    fleet = generate(100_000, mode="fleet", seed=11, interval_s=FLEET_INTERVAL_S)
    samples = write_samples(fleet, args.out / "samples.bin")
    results = {"numba_kernel_ns": numba_kernel_ns(fleet), "configs": {}}
    for models, trees in CONFIGS:
        name = f"{models}-{trees}"
        try:
            fast = export_bundle_c(bundle, args.out / name / "O2", models=models, trees=trees, progress=lambda _: None)
        except Exception as exc:  # e.g. uint8 of a set that holds no LightGBM model
            print(f"{name}: not exported ({exc})")
            continue
        make(fast.directory, "all", "iotengine_bench", compiler="gcc", opt="-O2")
        small = export_bundle_c(bundle, args.out / name / "Os", models=models, trees=trees, progress=lambda _: None)
        make(small.directory, "libiotengine.a", compiler="gcc", opt="-Os")
        results["configs"][name] = {
            "tasks": fast.models,
            "timing": c_bench(fast.directory, samples, args.samples),
            "sizes_Os": library_sizes(small.directory, small.library_sources),
        }
        print(f"{name}: {results['configs'][name]['timing']}")
    results["python_paths_ns"] = python_paths(bundle, fleet, 2_000)
    (args.out / "edge_measure.json").write_text(json.dumps(results, indent=1) + "\n")

    print(f"\nNumba kernel (batch driver): {results['numba_kernel_ns']:.0f} ns per sample\n")
    print("| models | iot_features ns | iot_score ns (p99) | per call p50 / p99 | " + " | ".join(
        t for t in results["configs"]["chosen-iot"]["tasks"]) + " |")  # fmt: skip
    print("| --- " * 9 + "|")
    for name, entry in results["configs"].items():
        t = entry["timing"]
        print(
            f"| {name} | {t['features_ns_median']:.0f} | {t['score_ns_median']:,.0f} ({t['score_ns_p99']:,.0f}) "
            f"| {t['score_call_ns_median']:,.0f} / {t['score_call_ns_p99']:,.0f} | "
            + " | ".join(f"{v:,.0f}" for v in t["tasks_ns_median"].values())
            + " |"
        )
    print("\n| models | object | text | data | bss |\n| --- | --- | --- | --- | --- |")
    for name, entry in results["configs"].items():
        for obj, size in entry["sizes_Os"].items():
            print(f"| {name} | {obj} | {size['text']:,} | {size['data']:,} | {size['bss']:,} |")
    print("\n| Python path | ns per sample |\n| --- | --- |")
    for path, ns in results["python_paths_ns"].items():
        print(f"| {path} | {ns:,.0f} |")
    samples.unlink()


if __name__ == "__main__":
    main()
