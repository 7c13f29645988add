"""Benchmark the feature paths and their peers on fleet data, in one run; print Markdown tables and write a chart.

Measured in one run, medians over --repeat runs after a warm-up, on the same fleet rows:
- batch: the kernel alone (kernels.step.drive_part over the table's columns, one thread, into a reused output and
  into a fresh one), compute_features on one thread and on all cores (fresh output, and a reused ``out=``
  buffer), float32 output, features_table (the Arrow table of ids, labels and one column per feature),
  FeatureStream.update_batch;
- the peers: the 67 features the usual pandas way (bench.baselines.pandas_features, the baseline); River's
  statistics over the same samples (bench.river_peer: the 25 stateful features River computes); the pure-Python
  per-sample implementation (bench.baselines.PythonFeatureStream);
- per update: FeatureStream.update against River and pure Python, median and p99 per call, and the cost for a
  machine with 10 samples of history against one with 1,000,000 (O(1) shown).

Usage: python scripts/bench_features.py [--rows 1000000] [--repeat 3] [--out results.md] [--chart features.png]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa

from bench.baselines import PythonFeatureStream, pandas_features
from bench.river_peer import RIVER_FEATURES, RiverFeatureStream
from bench.timing import median_seconds
from engine.data.loading import load_telemetry
from engine.data.schema import SENSORS
from engine.data.synthetic import generate
from engine.features.batch import compute_features, features_table
from engine.features.batch_driver import available_cores
from engine.features.stream import FeatureStream
from engine.report.figures import pyplot, save_figure
from kernels.state import allocate
from kernels.step import drive_part


def clock_overhead_ns() -> float:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(10_000):
        started = clock()
        samples.append(clock() - started)
    return float(np.median(samples))


def update_latencies_ns(update, samples: list, repeat_from: int) -> np.ndarray:
    """ns of each ``update(machine, timestamp, sensors)`` call over ``samples`` (distinct rows)."""
    clock = time.perf_counter_ns
    out = np.empty(len(samples))
    for k, (machine, stamp, values) in enumerate(samples):
        started = clock()
        update(machine, stamp + repeat_from, values)
        out[k] = clock() - started
    return out - clock_overhead_ns()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--python-rows", type=int, default=100_000, help="rows for River and pure Python")
    parser.add_argument("--calls", type=int, default=200_000, help="update() calls timed per path")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None, help="also write the tables to this Markdown file")
    parser.add_argument("--chart", default=None, help="write the chart to this PNG (default: next to --out)")
    args = parser.parse_args()

    table = load_telemetry(generate(args.rows, mode="fleet", seed=0))
    frame = table.to_pandas()
    n = table.num_rows
    cores = available_cores()
    print(f"fleet data: {n:,} rows, 50 machines; {cores} cores; medians of {args.repeat} runs", flush=True)

    ids = table.column("machine_id").to_numpy()
    slots = (ids - ids.min()).astype(np.int64)
    stamps = table.column("timestamp").cast(pa.int64()).to_numpy()
    columns = tuple(table.column(s).to_numpy() for s in SENSORS)
    values = np.column_stack(columns)
    order = np.arange(n, dtype=np.int64)
    owner = np.zeros(int(slots.max()) + 1, dtype=np.int64)
    reused = np.empty((n, 67))
    status = np.zeros(n, np.int8)

    def kernel(out):
        fstate, istate = allocate(owner.shape[0])
        drive_part(fstate, istate, order, slots, stamps, columns, 0, out, status, owner, 0)

    batch = {}
    batch["kernel alone, 1 thread, reused output"] = median_seconds(lambda: kernel(reused), args.repeat)
    batch["kernel alone, 1 thread, fresh output"] = median_seconds(lambda: kernel(np.empty((n, 67))), args.repeat)
    batch["compute_features, 1 thread"] = median_seconds(lambda: compute_features(table, threads=1), args.repeat)
    batch["compute_features, 1 thread, out= reused"] = median_seconds(
        lambda: compute_features(table, threads=1, out=reused), args.repeat
    )
    batch[f"compute_features, {cores} threads"] = median_seconds(lambda: compute_features(table), args.repeat)
    batch[f"compute_features, {cores} threads, out= reused"] = median_seconds(
        lambda: compute_features(table, out=reused), args.repeat
    )
    batch[f"compute_features, {cores} threads, float32"] = median_seconds(
        lambda: compute_features(table, dtype=np.float32), args.repeat
    )

    batch[f"features_table (Arrow columns), {cores} threads"] = median_seconds(
        lambda: features_table(table), args.repeat
    )

    def stream_batches(size=1000):
        stream = FeatureStream()
        for start in range(0, n, size):
            stream.update_batch(ids[start : start + size], stamps[start : start + size], values[start : start + size])

    batch["FeatureStream.update_batch, batches of 1,000"] = median_seconds(stream_batches, args.repeat)
    print("  batch paths done", flush=True)
    pandas_s = median_seconds(lambda: pandas_features(frame), args.repeat)
    batch["pandas, the usual way (baseline)"] = pandas_s
    print("  pandas done", flush=True)

    m = min(args.python_rows, n)
    rows = list(zip(ids[:m].tolist(), stamps[:m].tolist(), values[:m].tolist(), strict=True))

    def river_stream():
        stream = RiverFeatureStream()
        for machine, _, x in rows:
            stream.update(machine, x)

    def python_stream():
        stream = PythonFeatureStream()
        for machine, stamp, x in rows:
            stream.update(machine, stamp, x)

    batch[f"River, per sample ({len(RIVER_FEATURES)} of the 67 features; {m:,} rows)"] = (
        median_seconds(river_stream, args.repeat) * n / m
    )
    batch[f"pure Python, per sample ({m:,} rows)"] = median_seconds(python_stream, args.repeat) * n / m
    print("  River and pure Python done", flush=True)

    # Per update, on distinct rows: each path gets the fleet's first rows, continued after the history it has.
    calls = rows[: min(args.calls, m)]
    after = int(stamps.max()) - int(stamps.min()) + 1
    stream = FeatureStream()
    stream.update_batch(ids, stamps, values)
    river = RiverFeatureStream()
    python = PythonFeatureStream()
    for machine, stamp, x in rows[:1000]:
        river.update(machine, x)
        python.update(machine, stamp, x)
    per_update = {
        "FeatureStream.update": update_latencies_ns(stream.update, calls, after),
        f"River ({len(RIVER_FEATURES)} features)": update_latencies_ns(
            lambda machine, _, x: river.update(machine, x), calls, after
        ),
        "pure Python (67 features)": update_latencies_ns(python.update, calls, after),
    }
    history = FeatureStream()
    history.update_batch(np.zeros(10, np.int64), np.arange(10), np.ones((10, 5)))
    history.update_batch(np.ones(1_000_000, np.int64), np.arange(1_000_000), np.ones((1_000_000, 5)))
    short = update_latencies_ns(history.update, [(0, 10**7 + k, [1.0] * 5) for k in range(len(calls) // 2)], 0)
    long = update_latencies_ns(history.update, [(1, 10**7 + k, [1.0] * 5) for k in range(len(calls) // 2)], 0)

    kernel_reused = batch["kernel alone, 1 thread, reused output"]
    kernel_fresh = batch["kernel alone, 1 thread, fresh output"]
    one = batch["compute_features, 1 thread"]
    one_reused = batch["compute_features, 1 thread, out= reused"]
    many = batch[f"compute_features, {cores} threads"]
    many_reused = batch[f"compute_features, {cores} threads, out= reused"]
    update_us = float(np.median(per_update["FeatureStream.update"])) / 1000
    goals = [  # (goal, measured, unit, met)
        (f"compute_features >= 50x pandas on {cores} cores", pandas_s / many, "x", pandas_s / many >= 50),
        (f"  (with out= reused, {cores} cores)", pandas_s / many_reused, "x", pandas_s / many_reused >= 50),
        ("compute_features >= 25x pandas on 1 core", pandas_s / one, "x", pandas_s / one >= 25),
        ("  (with out= reused, 1 core)", pandas_s / one_reused, "x", pandas_s / one_reused >= 25),
        (
            "compute_features <= 1.2x the kernel alone (fresh outputs)",
            one / kernel_fresh,
            "x",
            one / kernel_fresh <= 1.2,
        ),
        (
            "compute_features <= 1.2x the kernel alone (reused outputs)",
            one_reused / kernel_reused,
            "x",
            one_reused / kernel_reused <= 1.2,
        ),
        ("FeatureStream.update <= 1.0 us median", update_us, " us", update_us <= 1.0),
    ]
    lines = [
        f"Fleet data, {n:,} rows, 50 machines, {cores} cores, medians of {args.repeat} runs, one run of every path.",
        "",
        "| path | rows/s | ns/row | vs pandas |",
        "| --- | --- | --- | --- |",
        *(f"| {name} | {n / s:,.0f} | {s / n * 1e9:,.0f} | {pandas_s / s:.1f}x |" for name, s in batch.items()),
        "",
        "| one update call | median ns | p99 ns | vs FeatureStream.update |",
        "| --- | --- | --- | --- |",
        *(
            f"| {name} | {np.median(t):,.0f} | {np.percentile(t, 99):,.0f} | {np.median(t) / 1000 / update_us:.1f}x |"
            for name, t in per_update.items()
        ),
        f"| FeatureStream.update, machine with 10 samples of history | {np.median(short):,.0f} | "
        f"{np.percentile(short, 99):,.0f} | |",
        f"| FeatureStream.update, machine with 1,000,000 samples of history | {np.median(long):,.0f} | "
        f"{np.percentile(long, 99):,.0f} | |",
        "",
        f"History cost ratio (1,000,000 vs 10 samples, medians): {np.median(long) / np.median(short):.2f}",
        "",
        "| goal | measured | met |",
        "| --- | --- | --- |",
        *(f"| {name} | {value:.2f}{unit} | {'met' if met else 'not met'} |" for name, value, unit, met in goals),
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    chart = args.chart or (str(args.out).rsplit(".", 1)[0] + ".png" if args.out else None)
    if chart:
        write_chart(chart, n, batch, per_update)
        print(f"chart: {chart}")


def write_chart(path: str, n: int, batch: dict[str, float], per_update: dict[str, np.ndarray]) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})
    names = list(batch)
    left.barh(names, [n / batch[name] for name in names], color="tab:blue")
    left.set_xscale("log")
    left.set_xlabel("rows per second (log)")
    left.invert_yaxis()
    left.set_title("batch features")
    names = list(per_update)
    right.barh(names, [np.median(per_update[name]) / 1000 for name in names], color="tab:orange")
    right.set_xscale("log")
    right.set_xlabel("us per update call, median (log)")
    right.invert_yaxis()
    right.set_title("one sample at a time")
    save_figure(fig, path)


if __name__ == "__main__":
    main()
