"""The model benchmark suite behind ``iotengine bench``: every way to run each model, side by side, in one run.

Models: the LightGBM model of every task in a bundle, the five regressors of its unsupervised detector
(``unsupervised_<sensor>``, on their own columns of the detector's 78 inputs), plus a standard large model (500
trees, 63 leaves, trained on generated fleet data) so that results do not hang on one small model. The document's
``unsupervised`` section sums the five regressors per runtime and batch: the detector's size and latency.
Runtimes, single-threaded but for the one record of ``iot`` on ``THREADS`` threads (every record says how many):

=============  ========================================================================================
lightgbm       ``Booster.predict(num_threads=1)``: the baseline
iot            iotengine's own generated trees (compile/tree_codegen.py) through cffi
               (``bundle.predict(backend="iot")``; batch 1: ``predict_row``); also on ``THREADS`` threads
iot-c          the same library called from a C driver (bench/c/driver.c): no Python in the loop
native         the tl2cgen library through cffi (what ``bundle.predict(backend="native")`` runs)
native-c       the same library from the C driver
uint8          the uint8-code trees (compile/uint8_trees.py) through cffi
uint8-c        the uint8-code trees from the C driver
onnx-fp32      onnxruntime, onnxmltools' export
onnx-int8      onnxruntime, the GEMM form quantized to int8
lleaves        lleaves (LLVM), in its own virtual environment (bench/lleaves_env.py)
=============  ========================================================================================

Each record: ``model, runtime, batch, threads, median_ns_per_row, p99_ns_per_row, size_bytes, max_abs_diff``
(against LightGBM, on the same rows), plus speedups against LightGBM and lleaves on one thread measured in the
same run. Batch 1 times
every call (median and p99 of calls); larger batches time ``repeats`` calls on one block of rows. A runtime
whose single call would take more than ``MAX_CALL_SECONDS`` at a batch size is recorded as skipped, with why.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np

from bench.artifacts import ModelArtifacts, Prebuilt, build_artifacts
from bench.detector import detector_totals
from bench.end_to_end import end_to_end
from bench.lleaves_env import LLEAVES_CACHE, RUNNER, lleaves_python
from compile.errors import CompileError
from engine.bundle.format import Bundle
from engine.data.synthetic import FLEET_INTERVAL_S, generate
from engine.features.batch_driver import run_history
from engine.models.autoencoder import detector_matrix
from engine.models.tasks import TASK_BY_NAME, inputs_and_targets

__all__ = ["RUNTIMES", "SuiteConfig", "run_suite"]

RUNTIMES = ("lightgbm", "iot", "iot-c", "native", "native-c", "uint8", "uint8-c", "onnx-fp32", "onnx-int8", "lleaves")
THREADS = 2  # the threaded record of ``iot``: the cores of this project's machines
C_RUNTIMES = {"native-c": "native", "uint8-c": "uint8", "iot-c": "iot"}  # runtime -> the library it drives
LARGE_MODEL = "large_500x63"
LARGE_PARAMS = {
    "objective": "binary",
    "num_leaves": 63,
    "learning_rate": 0.05,
    "max_bin": 255,
    "deterministic": True,
    "num_threads": 1,
    "verbose": -1,
    "seed": 0,
}
LARGE_TREES = 500
MAX_CALL_SECONDS = 30.0
DRIVER_SOURCE = Path(__file__).parent / "c" / "driver.c"


@dataclass(frozen=True)
class SuiteConfig:
    """Sizes of a run. ``quick`` is what the tests and ``iotengine run`` use."""

    batches: tuple[int, ...]
    repeats: int
    single_rows: int
    train_rows: int
    drift_rows: int

    @classmethod
    def of(cls, quick: bool) -> SuiteConfig:
        if quick:
            return cls(batches=(1, 1_000, 10_000), repeats=3, single_rows=200, train_rows=20_000, drift_rows=2_000)
        return cls(
            batches=(1, 1_000, 10_000, 100_000), repeats=7, single_rows=2_000, train_rows=100_000, drift_rows=10_000
        )


def _large_model(rows: int) -> lgb.Booster:
    X, y = inputs_and_targets(generate(rows, mode="fleet", seed=3, interval_s=FLEET_INTERVAL_S))
    data = lgb.Dataset(X, y["anomaly_flag"], categorical_feature=[X.shape[1] - 1], free_raw_data=False)
    return lgb.train(LARGE_PARAMS, data, num_boost_round=LARGE_TREES)


def _percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def _time_python(predict: Callable[[np.ndarray], object], X: np.ndarray, batch: int, config: SuiteConfig, one_row=None):
    """(median, p99) ns per row; at batch 1, ``one_row`` (a function of one (k,) row) is timed when given."""
    if batch == 1:
        rows = [X[i : i + 1] for i in range(config.single_rows)]
        if one_row is not None:
            predict, rows = one_row, [X[i] for i in range(config.single_rows)]
        predict(rows[0])
        times = []
        for _ in range(config.repeats):
            for row in rows:
                started = time.perf_counter_ns()
                predict(row)
                times.append(time.perf_counter_ns() - started)
        return _percentiles(times)
    block = X[:batch]
    started = time.perf_counter()
    predict(block)  # warm-up, and the estimate of one call
    if time.perf_counter() - started > MAX_CALL_SECONDS:
        return None
    times = []
    for _ in range(config.repeats):
        started = time.perf_counter_ns()
        predict(block)
        times.append((time.perf_counter_ns() - started) / batch)
    return _percentiles(times)


def _driver(work: Path) -> Path:
    binary = work / "driver"
    flags = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"]
    done = subprocess.run(
        ["gcc", *flags, str(DRIVER_SOURCE), "-ldl", "-o", str(binary)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise CompileError(f"gcc could not build the C driver:\n{done.stderr[-2000:]}")
    return binary


def _time_c(driver: Path, library: Path, inputs: Path, X: np.ndarray, batch: int, config: SuiteConfig):
    rows = config.single_rows if batch == 1 else X.shape[0]
    command = [str(driver), str(library), str(inputs), str(rows), str(X.shape[1]), str(batch), str(config.repeats)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise CompileError(f"C driver failed on {library.name}: {done.stderr.strip()}")
    result = json.loads(done.stdout)
    return result["median_ns_per_row"], result["p99_ns_per_row"]


def _prebuilt(bundle: Bundle, set_name: str, task: str) -> Prebuilt | None:
    """The bundle's tl2cgen library and ONNX exports of its LightGBM model of ``task`` in a set (and its iot
    library, when the bundle has one), if it has them all."""
    native = bundle.native_sets.get(set_name, {}).get(task)
    onnx = bundle.onnx_sets.get(set_name, {}).get(task)
    own = bundle.manifest.get("iot", {}).get(set_name, {}).get(task)
    if native is None or onnx is None:
        return None
    return Prebuilt(
        iot_library=None if own is None else bundle.verified_bytes(own["library"]),
        iot_source=None if own is None else bundle.verified_bytes(own["source"]),
        library=bundle.verified_bytes(native["library"]),
        sources={Path(relative).name: bundle.verified_bytes(relative) for relative in native["sources"]},
        onnx_fp32=bundle.verified_bytes(onnx["fp32"]),
        onnx_int8=bundle.verified_bytes(onnx["int8"]),
        gemm_fp32_bytes=int(onnx["gemm_fp32_bytes"]),
    )


def _precompile_lleaves(python: Path, texts: dict[str, Path], work: Path):
    """A future of the list of failures of compiling every model text with lleaves into LLEAVES_CACHE."""

    def compile_one(item):
        name, text = item
        command = [str(python), str(RUNNER), str(text), "-", str(work / name), "--cache-dir", str(LLEAVES_CACHE)]
        done = subprocess.run([*command, "--compile-only"], capture_output=True, text=True, timeout=3600)
        return None if done.returncode == 0 else f"lleaves failed on {name}: {done.stderr.strip()[-1000:]}"

    def compile_all():
        distinct = {}  # identical models (e.g. of two tasks with the same labels) compile once
        for name, text in texts.items():
            distinct.setdefault(hashlib.sha256(text.read_bytes()).hexdigest(), (name, text))
        with ThreadPoolExecutor(max_workers=2) as pool:
            return [failure for failure in pool.map(compile_one, distinct.values()) if failure]

    background = ThreadPoolExecutor(max_workers=1)
    future = background.submit(compile_all)
    background.shutdown(wait=False)  # the thread ends with its work; the caller waits on the future
    return future


def _lleaves(python: Path, artifacts: ModelArtifacts, inputs: Path, config: SuiteConfig) -> dict:
    """lleaves on the model's rows (``inputs``: a .npy file)."""
    out = artifacts.folder / "lleaves"
    command = [
        str(python), str(RUNNER), str(artifacts.folder / "model.txt"), str(inputs), str(out),
        "--batches", ",".join(map(str, config.batches)), "--repeats", str(config.repeats),
        "--single-rows", str(config.single_rows), "--cache-dir", str(LLEAVES_CACHE),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise CompileError(f"lleaves failed on {artifacts.name}: {done.stderr.strip()[-1000:]}")
    timings = json.loads((out / "timings.json").read_text())
    timings["predictions"] = np.load(out / "predictions.npy")
    return timings


def run_suite(
    bundle_path,
    out: Path,
    *,
    quick: bool = False,
    progress: Callable[[str], None] = print,
    lleaves_venv: Path | None = None,
) -> dict:
    """Run the suite on the bundle's LightGBM models and the standard large model; write ``out/results.json``.

    Returns the results document (also written): ``meta``, ``records``, ``sizes``, ``end_to_end`` and
    ``unavailable`` (runtime -> reason).
    """
    config = SuiteConfig.of(quick)
    bundle = Bundle.load(bundle_path)  # checked before anything is written
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="iotengine_bench_"))
    try:
        return _run(bundle, out, work, config, quick, progress, lleaves_venv)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(bundle, out, work, config, quick, progress, lleaves_venv) -> dict:
    n_rows = max(max(config.batches), config.drift_rows, config.single_rows)
    table = generate(n_rows, mode="fleet", seed=11, interval_s=FLEET_INTERVAL_S)
    X_tasks, _ = inputs_and_targets(table)
    rows: dict[str, np.ndarray] = {}  # model -> its input rows, where not all 68 inputs
    driver = _driver(work)
    unavailable = {}
    python, reason = lleaves_python(lleaves_venv)
    if python is None:
        unavailable["lleaves"] = reason
        progress(f"  lleaves unavailable: {reason}")

    models: dict[str, tuple[lgb.Booster, str]] = {}
    for task, entry in bundle.model_set("lightgbm").items():
        booster = lgb.Booster(model_str=bundle.verified_bytes(entry["file"]).decode())
        models[task] = (booster, TASK_BY_NAME[task].kind)
    if bundle.unsupervised is not None:
        D = detector_matrix(X_tasks, run_history(table))
        for sensor, entry in bundle.model_set("unsupervised").items():
            booster = lgb.Booster(model_str=bundle.verified_bytes(entry["file"]).decode())
            models[f"unsupervised_{sensor}"] = (booster, "regression")
            rows[f"unsupervised_{sensor}"] = D[:, entry["columns"]]
    started = time.perf_counter()
    models[LARGE_MODEL] = (_large_model(config.train_rows), "binary")
    progress(f"  trained {LARGE_MODEL} on {config.train_rows:,} fleet rows in {time.perf_counter() - started:.0f} s")

    records, sizes, task_libraries = [], [], {}
    # LLVM compiles the models for lleaves in the background (two at a time, cached per machine) while the
    # project's artifacts build; nothing is timed until both are done.
    compiling = None
    if python is not None:
        texts = {}
        for name, (booster, _) in models.items():
            (out / "models" / name).mkdir(parents=True, exist_ok=True)
            texts[name] = out / "models" / name / "model.txt"
            booster.save_model(str(texts[name]))
        compiling = _precompile_lleaves(python, texts, work / "lleaves-compile")
    built: dict[str, ModelArtifacts] = {}
    for name, (booster, kind) in models.items():
        started = time.perf_counter()
        prebuilt = None
        if name in TASK_BY_NAME:
            prebuilt = _prebuilt(bundle, "lightgbm", name)
        elif name.startswith("unsupervised_"):
            prebuilt = _prebuilt(bundle, "unsupervised", name.removeprefix("unsupervised_"))
        built[name] = build_artifacts(name, booster, kind, out / "models" / name, prebuilt)
        how = "taken from the bundle" if prebuilt else "built"
        progress(f"  {name}: {booster.num_trees()} trees, artifacts {how} in {time.perf_counter() - started:.1f} s")
    if compiling is not None:
        started = time.perf_counter()
        failures = compiling.result()
        progress(f"  lleaves: compiled (or found in {LLEAVES_CACHE}) after {time.perf_counter() - started:.0f} s more")
        if failures:
            unavailable["lleaves"] = failures[0]
            progress(f"  lleaves unavailable: {failures[0]}")
            python = None
    for name, (booster, _kind) in models.items():
        artifacts = built[name]
        if name in TASK_BY_NAME:
            task_libraries[name] = artifacts.native["iot"]
        X = np.ascontiguousarray(rows.get(name, X_tasks))
        inputs = work / f"{name}.f64"
        X.tofile(inputs)
        np.save(work / f"{name}.npy", X)
        drift_X = X[: config.drift_rows]
        reference = booster.predict(drift_X, num_threads=1)
        # (runtime, threads) -> predict(rows)
        runners: dict[tuple[str, int], Callable] = {("lightgbm", 1): lambda A, b=booster: b.predict(A, num_threads=1)}
        for runtime, model in artifacts.native.items():
            runners[runtime, 1] = model.predict
        runners["iot", THREADS] = lambda A, m=artifacts.native["iot"]: m.predict(A, threads=THREADS)
        for runtime, model in artifacts.onnx.items():
            runners[runtime, 1] = model.predict
        size = {
            "lightgbm": artifacts.sizes["lightgbm_text"],
            "iot": artifacts.sizes["iot_so"],
            "iot-c": artifacts.sizes["iot_so"],
            "native": artifacts.sizes["tl2cgen_so"],
            "native-c": artifacts.sizes["tl2cgen_so"],
            "uint8": artifacts.sizes["uint8_so"],
            "uint8-c": artifacts.sizes["uint8_so"],
            "onnx-fp32": artifacts.sizes["onnx_fp32"],
            "onnx-int8": artifacts.sizes["onnx_int8"],
        }
        diff = {key: _max_abs_diff(run(drift_X), reference) for key, run in runners.items()}
        for runtime, library_runtime in C_RUNTIMES.items():
            diff[runtime, 1] = diff[library_runtime, 1]  # the same libraries
        timings: dict[tuple[str, int, int], tuple[float, float] | None] = {}  # (runtime, batch, threads)
        per_row: dict[tuple[str, int], float] = {}  # the last measured ns per row of each runner, to foresee slow calls
        for batch in sorted(config.batches):
            for (runtime, threads), run in runners.items():
                # The GEMM form holds (trees x rows x nodes) tensors: a call that would run past the limit is not
                # made at all, as its intermediates can also outgrow memory (500 trees x 100k rows: > 20 GB).
                if threads > 1 and batch == 1:
                    continue  # one row is never split over threads
                if per_row.get((runtime, threads), 0.0) * batch / 1e9 > MAX_CALL_SECONDS:
                    if threads == 1:
                        timings[runtime, batch, threads] = None
                    continue
                one_row = artifacts.native["iot"].predict_row if (runtime, threads) == ("iot", 1) else None
                timings[runtime, batch, threads] = _time_python(run, X, batch, config, one_row)
                if timings[runtime, batch, threads] is not None:
                    per_row[runtime, threads] = timings[runtime, batch, threads][0]
            for runtime, library_runtime in C_RUNTIMES.items():
                timings[runtime, batch, 1] = _time_c(
                    driver, artifacts.libraries[library_runtime], inputs, X, batch, config
                )
        if python is not None:
            try:
                lleaves = _lleaves(python, artifacts, work / f"{name}.npy", config)
            except CompileError as exc:
                unavailable["lleaves"] = str(exc)
                progress(f"  lleaves unavailable: {exc}")
            else:
                size["lleaves"] = int(lleaves["size_bytes"])
                artifacts.sizes["lleaves_so"] = size["lleaves"]
                diff["lleaves", 1] = _max_abs_diff(lleaves["predictions"][: config.drift_rows], reference)
                for batch in config.batches:
                    cell = lleaves["batches"][str(batch)]
                    timings["lleaves", batch, 1] = (cell["median_ns_per_row"], cell["p99_ns_per_row"])
        sizes.append({"model": name, "trees": booster.num_trees(), **artifacts.sizes})
        for (runtime, batch, threads), timing in timings.items():
            record = {
                "model": name,
                "runtime": runtime,
                "batch": batch,
                "threads": threads,
                "median_ns_per_row": None if timing is None else round(timing[0], 1),
                "p99_ns_per_row": None if timing is None else round(timing[1], 1),
                "size_bytes": size[runtime],
                "max_abs_diff": diff[runtime, threads],
            }
            if timing is None:
                record["skipped"] = f"one call at batch {batch} would take more than {MAX_CALL_SECONDS:.0f} s"
            records.append(record)
        progress(f"  {name}: timed {len(timings)} runtime x batch cells")
    _add_ratios(records)
    document = {
        "meta": {
            "quick": quick,
            "rows": n_rows,
            "config": config.__dict__,
            "machine": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "lightgbm": lgb.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "records": records,
        "sizes": sizes,
        "end_to_end": end_to_end(bundle, task_libraries, config.single_rows),
        "unsupervised": detector_totals(records, [name for name in models if name.startswith("unsupervised_")]),
        "unavailable": unavailable,
    }
    (out / "results.json").write_text(json.dumps(document, indent=1) + "\n")
    return document


def _max_abs_diff(got, expected) -> float:
    got = np.asarray(got, dtype=np.float64)
    return float(np.abs(got.reshape(np.shape(expected)) - expected).max())


def _add_ratios(records: list[dict]) -> None:
    """Speedups against LightGBM and lleaves on one thread, at the same batch size, in the same run."""
    by_key = {(r["model"], r["runtime"], r["batch"], r["threads"]): r for r in records}
    for record in records:
        for baseline in ("lightgbm", "lleaves"):
            base = by_key.get((record["model"], baseline, record["batch"], 1))
            value = record["median_ns_per_row"]
            ok = base is not None and base["median_ns_per_row"] and value
            record[f"speedup_vs_{baseline}"] = round(base["median_ns_per_row"] / value, 3) if ok else None
