"""Measure the ways to call the feature kernel and the C library for one sample from Python, side by side, and the
Python time around the C library's own figures: which call FeatureStream.update and StreamScorer.score keep.

FeatureStream.update (one sample, the same checks before each call):
- Numba's dispatcher (``step_one(...)``: it types all eleven arguments on every call);
- the compiled function the dispatcher would pick (``step_one.compile(signature)``), what update calls;
- a Numba ``cfunc`` of the same step, called through cffi (ABI mode) and through ctypes, state by pointer.

StreamScorer.score, backend c (the bundle's edge library): the raw ``iot_score`` call through cffi in ABI mode
(the library as opened) and in API mode (a cffi extension built here against the same library), with
preallocated buffers; then the whole ``score`` call. Against the C library's own timing of ``iot_score`` and
``iot_score_many`` (``iotengine_bench``, built here), the goals: score within 1.5 us of its C call, score_batch
within 100 ns per sample of the C time.

    python scripts/measure_stream_calls.py --bundle artifacts/train/bundle [--calls 200000] [--out calls.md]
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from cffi import FFI
from numba import carray, cfunc, types

from bench.edge import c_bench, write_samples
from compile.edge import make
from compile.edge_binding import ABI
from engine.bundle.edge import build_edge, edge_library, export_bundle_c
from engine.bundle.format import Bundle
from engine.data.loading import load_telemetry
from engine.data.schema import SENSORS
from engine.data.synthetic import FLEET_INTERVAL_S, generate
from engine.features.stream import FeatureStream
from engine.stream.scorer import StreamScorer
from kernels.names import N_FEATURES
from kernels.state import F_WIDTH, I_WIDTH, allocate
from kernels.step import step, step_one

STEP_POINTERS = (
    "int64_t(*)(double*, int64_t*, int64_t, int64_t, double, double, double, double, double, int64_t, double*)"
)


@cfunc(
    types.int64(
        types.CPointer(types.float64),
        types.CPointer(types.int64),
        types.int64,
        types.int64,
        *([types.float64] * 5),
        types.int64,
        types.CPointer(types.float64),
    ),
    nopython=True,
    error_model="numpy",
)
def step_by_pointer(fstate, istate, slot, timestamp_s, t, v, h, p, e, offset_s, out):
    # the state buffers viewed in place, as far as the slot's row
    f = carray(fstate, (slot + 1, F_WIDTH))
    i = carray(istate, (slot + 1, I_WIDTH))
    o = carray(out, (1, N_FEATURES))
    return step(f, i, slot, timestamp_s, (t, v, h, p, e), 0, offset_s, o, 0)


class Samples:
    """Fleet samples as Python values, replayed in order; each pass over them shifts the timestamps past the last
    one, so no sample is late and every call gets a distinct sample (as iotengine_bench replays them)."""

    def __init__(self, table: pa.Table):
        table = load_telemetry(table)
        _, machines = np.unique(table.column("machine_id").to_numpy(), return_inverse=True)
        stamps = table.column("timestamp").cast(pa.int64()).to_numpy()
        values = np.column_stack([table.column(name).to_numpy() for name in SENSORS])
        statuses = table.column("machine_status").to_numpy()
        self.rows = list(zip(machines.tolist(), stamps.tolist(), values.tolist(), statuses.tolist(), strict=True))
        self.span = int(stamps.max()) - int(stamps.min()) + 86_400
        self.machines = int(machines.max()) + 1

    def calls(self, count: int, epoch: int) -> list[tuple[int, int, list[float], int]]:
        """``count`` (machine, timestamp, sensors, status) for the measurement numbered ``epoch``."""
        n = len(self.rows)
        out = []
        for k in range(count):
            machine, stamp, values, status = self.rows[k % n]
            out.append((machine, stamp + (epoch * 1000 + k // n + 1) * self.span, values, status))
        return out


def per_call_ns(call, arguments: list[tuple]) -> float:
    """Median ns of ``call(machine, timestamp, sensors, status)`` over the prepared ``arguments``, one clock
    reading before and after each call, less the clock's own cost."""
    clock = time.perf_counter_ns
    times = np.empty(len(arguments))
    for k, (machine, timestamp, values, status) in enumerate(arguments):
        started = clock()
        call(machine, timestamp, values, status)
        times[k] = clock() - started
    overhead = []
    for _ in range(10_000):
        started = clock()
        overhead.append(clock() - started)
    return float(np.median(times) - np.median(overhead))


def feature_calls(samples: Samples, calls: int) -> dict[str, float]:
    fstate, istate = allocate(samples.machines)
    step_one(fstate, istate, 0, 0, 1.0, 1.0, 1.0, 1.0, 1.0, 0, np.empty(N_FEATURES))
    fstate, istate = allocate(samples.machines)

    def dispatcher(machine, timestamp, sensors, _):
        t, v, h, p, e = sensors
        out = np.empty(N_FEATURES)
        step_one(fstate, istate, machine, int(timestamp), float(t), float(v), float(h), float(p), float(e), 0, out)
        return out

    ffi = FFI()
    by_cffi = ffi.cast(STEP_POINTERS, step_by_pointer.address)
    f_pointer = ffi.cast("double *", ffi.from_buffer(fstate))
    i_pointer = ffi.cast("int64_t *", ffi.from_buffer(istate))
    buffer = np.empty(N_FEATURES)
    buffer_pointer = ffi.cast("double *", ffi.from_buffer(buffer))

    def cffi_abi(machine, timestamp, sensors, _):
        t, v, h, p, e = sensors
        by_cffi(f_pointer, i_pointer, machine, int(timestamp), float(t), float(v), float(h), float(p), float(e), 0,
                buffer_pointer)  # fmt: skip
        return buffer.copy()

    arguments = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, *[ctypes.c_double] * 5]
    by_ctypes = ctypes.CFUNCTYPE(ctypes.c_int64, *arguments, ctypes.c_int64, ctypes.c_void_p)(step_by_pointer.address)
    f_address, i_address, b_address = fstate.ctypes.data, istate.ctypes.data, buffer.ctypes.data

    def ctypes_call(machine, timestamp, sensors, _):
        t, v, h, p, e = sensors
        by_ctypes(f_address, i_address, machine, int(timestamp), float(t), float(v), float(h), float(p), float(e), 0,
                  b_address)  # fmt: skip
        return buffer.copy()

    update = FeatureStream().update
    return {
        "Numba dispatcher (step_one)": per_call_ns(dispatcher, samples.calls(calls, 1)),
        "Numba cfunc through cffi (ABI mode)": per_call_ns(cffi_abi, samples.calls(calls, 2)),
        "Numba cfunc through ctypes": per_call_ns(ctypes_call, samples.calls(calls, 3)),
        "compiled entry point: FeatureStream.update (kept)": per_call_ns(
            lambda machine, timestamp, sensors, _: update(machine, timestamp, sensors), samples.calls(calls, 4)
        ),
    }


def api_mode_module(edge_dir: Path, build_dir: Path):
    """A cffi API-mode extension that calls the bundle's libiotengine.so, built into ``build_dir``."""
    ffi = FFI()
    ffi.cdef(ABI)
    source = edge_dir / "src"
    ffi.set_source(
        "_iot_api_mode",
        '#include "iotengine.h"',
        include_dirs=[str(source)],
        library_dirs=[str(edge_dir)],
        runtime_library_dirs=[str(edge_dir)],
        libraries=["iotengine"],
    )
    ffi.compile(tmpdir=str(build_dir), verbose=False)
    sys.path.insert(0, str(build_dir))
    import _iot_api_mode

    return _iot_api_mode


def scorer_calls(bundle: Bundle, samples: Samples, calls: int, build_dir: Path) -> dict[str, float]:
    edge = edge_library(bundle)
    ffi, lib = edge.ffi, edge.lib
    states = edge.new_states(samples.machines, bundle.utc_offset_minutes)
    out = ffi.new("iot_scores *")
    base = ffi.cast("iot_state *", ffi.from_buffer(states))
    pointers = [base + k for k in range(samples.machines)]
    abi_score = lib.iot_score

    module = api_mode_module(Path(bundle.path) / "edge", build_dir)
    api_out = module.ffi.new("iot_scores *")
    api_base = module.ffi.cast("iot_state *", module.ffi.from_buffer(states))
    api_pointers = [api_base + k for k in range(samples.machines)]
    api_score = module.lib.iot_score

    return {
        "iot_score through cffi, ABI mode (the library as opened)": per_call_ns(
            lambda machine, timestamp, sensors, status: abi_score(pointers[machine], timestamp, sensors, status, out),
            samples.calls(calls, 1),
        ),
        "iot_score through cffi, API mode (an extension module)": per_call_ns(
            lambda machine, timestamp, sensors, status: api_score(
                api_pointers[machine], timestamp, sensors, status, api_out
            ),
            samples.calls(calls, 2),
        ),
        "StreamScorer.score (kept: ABI mode, preallocated record)": per_call_ns(
            StreamScorer(bundle).score, samples.calls(calls, 3)
        ),
    }


def batch_overhead_ns(bundle: Bundle, rows: int) -> dict[str, float]:
    table = load_telemetry(generate(rows, mode="fleet", seed=11, interval_s=FLEET_INTERVAL_S))  # the C bench's rows
    ids = table.column("machine_id").to_numpy()
    stamps = table.column("timestamp").cast(pa.int64()).to_numpy()
    values = np.column_stack([table.column(name).to_numpy() for name in SENSORS])
    statuses = table.column("machine_status").to_numpy()
    out = {}
    for size in (1_000, rows):
        times = []
        for _ in range(5):
            scorer = StreamScorer(bundle)
            started = time.perf_counter_ns()
            for first in range(0, rows, size):
                scorer.score_batch(*(a[first : first + size] for a in (ids, stamps, values, statuses)))
            times.append((time.perf_counter_ns() - started) / rows)
        out[f"StreamScorer.score_batch, batches of {size:,}"] = float(np.median(times))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, type=Path)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rows", type=int, default=100_000, help="fleet rows for score_batch and the C timing")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    bundle = Bundle.load(args.bundle)
    if "edge" not in bundle.manifest:
        bundle = build_edge(args.bundle, progress=lambda _: None)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        fleet = generate(args.rows, mode="fleet", seed=11, interval_s=FLEET_INTERVAL_S)
        exported = export_bundle_c(bundle, scratch / "c", models=bundle.edge.models, progress=lambda _: None)
        make(exported.directory, "iotengine_bench", compiler="gcc", opt="-O2")
        c_timing = c_bench(exported.directory, write_samples(fleet, scratch / "samples.bin"), 5 * args.rows)
        samples = Samples(fleet)
        features = feature_calls(samples, args.calls)
        scorer = scorer_calls(bundle, samples, args.calls // 4, scratch)
    batches = batch_overhead_ns(bundle, args.rows)

    c_call = c_timing["score_call_ns_median"]
    c_many = c_timing["score_many_ns_median"]
    update = features["compiled entry point: FeatureStream.update (kept)"]
    score = scorer["StreamScorer.score (kept: ABI mode, preallocated record)"]
    largest = batches[f"StreamScorer.score_batch, batches of {args.rows:,}"]
    lines = [
        f"Bundle {args.bundle} (models: {bundle.edge.models}); medians of {args.calls:,} calls on distinct samples.",
        "",
        "| FeatureStream.update: the call | median ns |",
        "| --- | --- |",
        *(f"| {name} | {ns:,.0f} |" for name, ns in features.items()),
        "",
        "| StreamScorer.score: the call | median ns | minus iot_score in C |",
        "| --- | --- | --- |",
        f"| iot_score in C, one clock per call (iotengine_bench) | {c_call:,.0f} | |",
        *(f"| {name} | {ns:,.0f} | {ns - c_call:+,.0f} |" for name, ns in scorer.items()),
        "",
        "| score_batch | ns per sample | minus iot_score_many in C |",
        "| --- | --- | --- |",
        f"| iot_score_many in C, micro-batches of 256 (iotengine_bench) | {c_many:,.0f} | |",
        *(f"| {name} | {ns:,.0f} | {ns - c_many:+,.0f} |" for name, ns in batches.items()),
        "",
        "| goal | measured | met |",
        "| --- | --- | --- |",
        f"| FeatureStream.update <= 1.0 us median | {update / 1000:.2f} us | "
        f"{'met' if update <= 1000 else 'not met'} |",
        f"| StreamScorer.score <= iot_score + 1.5 us | +{(score - c_call) / 1000:.2f} us | "
        f"{'met' if score - c_call <= 1500 else 'not met'} |",
        f"| score_batch <= C + 100 ns per sample | +{largest - c_many:.0f} ns | "
        f"{'met' if largest - c_many <= 100 else 'not met'} |",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
