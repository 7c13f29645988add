"""Benchmark the feature paths on fleet data, single thread, and print a Markdown table.

Measured in one run, medians over --repeat runs after a warm-up:
- batch: compute_features (validation + sort + kernel) and the kernel alone (kernels.step.drive);
- the same 67 features the usual pandas way (bench.baselines.pandas_features), the baseline;
- a per-sample pure-Python implementation in River's style (bench.baselines.PythonFeatureStream);
- FeatureStream.update latency per call (median, p99), and update_batch per sample;
- cost per update for a machine with 10 samples of history against one with 1,000,000 (O(1) shown).

Usage: python scripts/bench_features.py [--rows 1000000] [--repeat 3] [--out results.md]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np
import pyarrow as pa

from bench.baselines import PythonFeatureStream, pandas_features
from bench.timing import median_seconds
from engine.data.schema import SENSORS
from engine.data.synthetic import generate
from engine.features.batch import compute_features
from engine.features.stream import FeatureStream
from kernels.state import allocate
from kernels.step import drive


def call_latencies_ns(stream: FeatureStream, machine: int, start_ts: int, calls: int) -> np.ndarray:
    values = [70.0, 50.0, 40.0, 3.0, 2.0]
    update = stream.update
    clock = time.perf_counter_ns
    out = np.empty(calls)
    for k in range(calls):
        started = clock()
        update(machine, start_ts + k, values)
        out[k] = clock() - started
    return out - _clock_overhead_ns()


def _clock_overhead_ns() -> float:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(10_000):
        started = clock()
        samples.append(clock() - started)
    return float(np.median(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--python-rows", type=int, default=100_000, help="rows for the pure-Python baseline")
    parser.add_argument("--calls", type=int, default=200_000, help="update() calls timed")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None, help="also write the table to this Markdown file")
    args = parser.parse_args()

    table = generate(args.rows, mode="fleet", seed=0)
    frame = table.to_pandas()
    n = table.num_rows
    print(f"fleet data: {n:,} rows, 50 machines; single thread; medians of {args.repeat} runs", flush=True)

    ids = table.column("machine_id").to_numpy()
    slots = (ids - ids.min()).astype(np.int64)
    ts = table.column("timestamp").cast(pa.int64()).to_numpy()
    values = np.column_stack([table.column(s).to_numpy() for s in SENSORS])
    order = np.arange(n, dtype=np.int64)
    out = np.empty((n, 67))
    status = np.zeros(n, np.int8)

    def kernel_only():
        fstate, istate = allocate(int(slots.max()) + 1)
        drive(fstate, istate, order, slots, ts, values, 0, out, status)

    kernel = median_seconds(kernel_only, args.repeat)
    batch = median_seconds(lambda: compute_features(table), args.repeat)
    print("  kernel and batch done", flush=True)
    pandas_s = median_seconds(lambda: pandas_features(frame), args.repeat)
    print("  pandas done", flush=True)

    m = min(args.python_rows, n)
    py_rows = list(zip(ids[:m].tolist(), ts[:m].tolist(), values[:m].tolist(), strict=True))

    def python_stream():
        stream = PythonFeatureStream()
        for machine, t, x in py_rows:
            stream.update(machine, t, x)

    python_s = median_seconds(python_stream, args.repeat) * n / m

    def stream_batches(size=1000):
        stream = FeatureStream()
        for start in range(0, n, size):
            stream.update_batch(ids[start : start + size], ts[start : start + size], values[start : start + size])

    micro = median_seconds(stream_batches, args.repeat)

    stream = FeatureStream()
    stream.update_batch(ids, ts, values)
    latencies = call_latencies_ns(stream, int(ids[0]), int(ts.max()) + 1, args.calls)

    history = FeatureStream()
    history.update_batch(np.zeros(10, np.int64), np.arange(10), np.ones((10, 5)))
    history.update_batch(np.ones(1_000_000, np.int64), np.arange(1_000_000), np.ones((1_000_000, 5)))
    short = call_latencies_ns(history, 0, 10**7, args.calls // 2)
    long = call_latencies_ns(history, 1, 10**7, args.calls // 2)

    rows = [
        ("kernel alone (kernels.step.drive)", n / kernel, kernel / n * 1e9, pandas_s / kernel),
        ("compute_features (validate + sort + kernel)", n / batch, batch / n * 1e9, pandas_s / batch),
        ("FeatureStream.update_batch, batches of 1,000", n / micro, micro / n * 1e9, pandas_s / micro),
        ("pandas, the usual way (baseline)", n / pandas_s, pandas_s / n * 1e9, 1.0),
        (f"pure Python per sample, River style ({m:,} rows)", n / python_s, python_s / n * 1e9, pandas_s / python_s),
    ]
    lines = [
        f"Fleet data, {n:,} rows, single thread, medians of {args.repeat} runs.",
        "",
        "| path | rows/s | ns/row | vs pandas |",
        "| --- | --- | --- | --- |",
        *(f"| {name} | {rate:,.0f} | {ns:,.0f} | {ratio:.1f}x |" for name, rate, ns, ratio in rows),
        "",
        "| FeatureStream.update, one call | median ns | p99 ns |",
        "| --- | --- | --- |",
        f"| machine in a 50-machine fleet | {np.median(latencies):,.0f} | {np.percentile(latencies, 99):,.0f} |",
        f"| machine with 10 samples of history | {np.median(short):,.0f} | {np.percentile(short, 99):,.0f} |",
        f"| machine with 1,000,000 samples of history | {np.median(long):,.0f} | {np.percentile(long, 99):,.0f} |",
        "",
        f"History cost ratio (1,000,000 vs 10 samples, medians): {np.median(long) / np.median(short):.2f}",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
