"""Size, latency and accuracy of the ways to run a LightGBM model built by ``iotengine compile``.

Trains the five LightGBM task models on generated fleet data (the first third of ``--rows``), then for each:

- sizes: LightGBM text, the native library (as ``compile`` builds it), ONNX fp32 (onnxmltools), the GEMM form
  in fp32, and int8 with feature selection by Gather (what ``compile`` ships) and by MatMul (the textbook
  GEMM form, whose quantized input activations cost accuracy);
- accuracy on held-out rows: max |difference| from LightGBM and the task's score (F1 at 0.5, macro F1, R²);
- latency, single-threaded and interleaved: ns per row at batch ``--batch`` and per call at batch 1 (both from
  Python), medians of ``--repeats``.

Ratios are against LightGBM measured in the same run. Writes ``onnx_compare.md`` / ``.csv`` under ``--out``.

    python scripts/measure_onnx.py --out /tmp/onnx_compare
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
from compile.native import build_library, treelite_model
from compile.onnx_export import OnnxModel, lightgbm_onnx
from compile.onnx_gemm import gemm_model, quantize_int8
from compile.tl2cgen_source import generate_sources
from engine.data.synthetic import FLEET_INTERVAL_S, generate
from engine.models.cross_validation import fit_model, fold_metrics
from engine.models.model_files import LightGBMPredictor
from engine.models.tasks import TASKS, inputs_and_targets
from engine.models.zoo import candidates
from engine.report.markdown import markdown_table
from engine.report.tables import write_csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    X, y = inputs_and_targets(generate(args.rows, mode="fleet", seed=7, interval_s=FLEET_INTERVAL_S))
    n_train = args.rows // 3
    held_out = X[n_train:][: args.batch]
    work = Path(tempfile.mkdtemp(prefix="onnx_compare_"))
    records, runners = [], {}
    for task in tqdm(TASKS, desc="export"):
        booster = fit_model(candidates(task.kind)["lightgbm"], X[:n_train], y[task.name][:n_train]).booster_
        model = treelite_model(booster.model_to_string().encode(), "lightgbm")
        sources = generate_sources(model, work / task.name / "src", round_float32=False)
        library = build_library(sources, work / task.name / "model.so")
        gemm = gemm_model(booster)
        artifacts = {
            "lightgbm": (LightGBMPredictor(booster, task.kind), len(booster.model_to_string().encode())),
            "native": (
                NativeModel(library, hashlib.sha256(library.read_bytes()).hexdigest(), task.kind),
                library.stat().st_size,
            ),
            "onnx_fp32": (OnnxModel(lightgbm_onnx(booster).SerializeToString(), task.kind), None),
            "gemm_fp32": (OnnxModel(gemm.SerializeToString(), task.kind), None),
            "onnx_int8": (OnnxModel(quantize_int8(gemm), task.kind), None),
            "int8_matmul_selection": (
                OnnxModel(quantize_int8(gemm_model(booster, selection="matmul")), task.kind),
                None,
            ),
        }
        reference = booster.predict(held_out)
        labels = y[task.name][n_train:][: args.batch]
        for runtime, (runner, size) in artifacts.items():
            predicted = runner.predict(held_out)
            records.append(
                {
                    "task": task.name,
                    "trees": booster.num_trees(),
                    "runtime": runtime,
                    "size_bytes": size if size is not None else runner.size_bytes,
                    "max_abs_diff": float(np.abs(predicted - reference).max()),
                    "score": round(fold_metrics(task, labels, predicted)[task.score], 4),
                }
            )
            runners[task.name, runtime] = runner

    batch_ns = {key: [] for key in runners}
    single_ns = {key: [] for key in runners}
    rows = held_out[:300]
    for _ in tqdm(range(args.repeats), desc="time"):
        for key, runner in runners.items():
            if key[1] == "int8_matmul_selection":
                continue
            started = time.perf_counter_ns()
            runner.predict(held_out)
            batch_ns[key].append((time.perf_counter_ns() - started) / len(held_out))
            started = time.perf_counter_ns()
            for x in rows:
                runner.predict(x.reshape(1, -1))
            single_ns[key].append((time.perf_counter_ns() - started) / len(rows))
    for record in records:
        key = (record["task"], record["runtime"])
        base = (record["task"], "lightgbm")
        if batch_ns[key]:
            record["batch_ns_per_row"] = round(statistics.median(batch_ns[key]), 1)
            record["batch_speedup_vs_lightgbm"] = round(
                statistics.median(batch_ns[base]) / statistics.median(batch_ns[key]), 2
            )
            record["single_ns_per_call"] = round(statistics.median(single_ns[key]), 1)
            record["single_speedup_vs_lightgbm"] = round(
                statistics.median(single_ns[base]) / statistics.median(single_ns[key]), 2
            )
    args.out.mkdir(parents=True, exist_ok=True)
    header = [
        "task", "trees", "runtime", "size_bytes", "max_abs_diff", "score", "batch_ns_per_row",
        "batch_speedup_vs_lightgbm", "single_ns_per_call", "single_speedup_vs_lightgbm",
    ]  # fmt: skip
    write_csv(args.out / "onnx_compare.csv", [{h: r.get(h) for h in header} for r in records], digits=None)
    lines = markdown_table(header, [[r.get(h) for h in header] for r in records])
    (args.out / "onnx_compare.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
