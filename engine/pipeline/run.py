"""``iotengine run``: the main job, stage by stage, and its report (``REPORT.md``).

Each stage prints one line on the console (engine/pipeline/stages.py); everything else it prints, its own progress
and any third-party output, goes to ``run.log`` in the output folder, which the report links. The report's links
are checked when it is written: a run whose report names a missing file fails.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from engine.data.loading import load_telemetry_with_report, save_telemetry
from engine.pipeline.stages import Stages
from engine.report.markdown import missing_links

__all__ = ["RUN_ROWS", "STAGES", "run_pipeline"]

RUN_ROWS = 20_000  # the whole run in about three minutes on 2 cores
STAGES = 15
HELD_OUT_NAME = "kaggle-mode rows generated with seed + 1 (not trained on)"


def _progress_line(text: str) -> None:
    tqdm.write(text, file=sys.stderr)  # into run.log while a stage runs


def run_pipeline(out: Path, *, rows: int = RUN_ROWS, seed: int = 0, data=None, holdout=None) -> Path:
    """Run every stage into ``out`` and write ``out/REPORT.md``; returns its path."""
    from engine.data.eda import run_eda
    from engine.data.synthetic import FLEET_INTERVAL_S, generate
    from engine.features.batch import write_features
    from engine.models.trainer import train
    from engine.models.zoo import candidates

    families = len(candidates("binary"))
    out = Path(out)
    data_dir = out / "data"
    results: dict[str, object] = {}
    # Every input is loaded and checked before any stage runs: a bad file fails at once and writes nothing.
    given = None if data is None else load_telemetry_with_report(data)
    held_out = None if holdout is None else load_telemetry_with_report(holdout)[0]
    with Stages(total=STAGES, log_path=out / "run.log") as stages:
        if given is not None:
            kaggle = stages.run(f"load {data}", lambda: _logged(*given), _rows_and_machines)
            kaggle_title = f"Kaggle data: {Path(data).name}"
        else:
            kaggle = stages.run(
                f"generate kaggle-mode data ({rows:,} rows)",
                lambda: generate(rows, mode="kaggle", seed=seed),
                _rows_and_machines,
            )
            kaggle_title = "Kaggle-mode synthetic data"
        fleet = stages.run(
            f"generate fleet-mode data ({rows:,} rows)",
            # One sample per machine every 5 minutes: 100k rows span a week, long enough for machines to
            # degrade, fail and be repaired (at one a minute the same rows cover 33 hours and hold no failure).
            lambda: generate(rows, mode="fleet", seed=seed, interval_s=FLEET_INTERVAL_S),
            _rows_and_machines,
        )
        results["data"] = {
            "kaggle": (save_telemetry(kaggle, data_dir / "kaggle.parquet"), kaggle),
            "fleet": (save_telemetry(fleet, data_dir / "fleet.parquet"), fleet),
        }
        results["eda_kaggle"] = stages.run(
            "EDA of kaggle data",
            lambda: run_eda(kaggle, out / "eda" / "kaggle", title=kaggle_title),
            lambda eda: f"{len(eda.files)} files in eda/kaggle",
        )
        results["features"] = {
            name: stages.run(
                f"67 features of {name} data",
                lambda table=table, name=name: write_features(table, out / "features" / f"{name}.parquet"),
                lambda path, table=table: f"{table.num_rows:,} rows to {path.relative_to(out)}",
            )
            for name, table in (("kaggle", kaggle), ("fleet", fleet))
        }
        results["eda_fleet"] = stages.run(
            "EDA of fleet data",
            lambda: run_eda(fleet, out / "eda" / "fleet", title="Fleet-mode synthetic data"),
            lambda eda: f"{len(eda.files)} files in eda/fleet",
        )
        if held_out is None:
            held_out = generate(max(rows // 5, 2_000), mode="kaggle", seed=seed + 1)
        held_out_name = Path(holdout).name if holdout is not None else "kaggle-mode held out"
        training = stages.run(
            f"train five tasks, {families} models each, 3-fold CV ({kaggle.num_rows:,} rows), and the unsupervised "
            "detector",
            lambda: train(
                kaggle,
                out / "train",
                fleet=fleet,
                holdout=held_out if holdout is not None else None,  # loaded above
                unsupervised_holdouts={held_out_name: held_out},
                seed=seed,
                progress=_progress_line,
            ),
            lambda run: (
                "chosen " + ", ".join(f"{family} x{count}" for family, count in Counter(run.best.values()).items())
            ),
        )
        results["training"] = training
        bundle_path = training.bundle.path
        built = stages.run(
            "build, side by side: native libraries (tl2cgen and iotengine's generator), ONNX exports, C library, "
            "the replay's fleet bundle",
            lambda: _build_stage(bundle_path, out, seed),
            _build_summary,
        )
        results["onnx"] = stages.run(
            "ONNX drift on held-out data: fp32 of every model (onnxmltools, skl2onnx), int8 of LightGBM",
            lambda: _onnx_stage(built["bundle"], out / "onnx", held_out),
            _onnx_summary,
        )
        results["bench"] = stages.run(
            "quick model benchmarks: LightGBM, iot, native, C, uint8, ONNX fp32/int8, lleaves",
            lambda: _quick_bench(bundle_path, out / "bench"),
            _bench_summary,
        )
        results["edge"] = stages.run(
            "C edge library: check the example program, time iot_features/iot_score in C and from Python",
            lambda: _edge_stage(bundle_path, out / "edge", fleet, kaggle),  # built by the build stage
            _edge_summary,
        )
        results["score"] = stages.run(
            "batch scoring (iotengine score) of held-out telemetry with every backend",
            lambda: _score_stage(bundle_path, out / "score", held_out),
            _score_summary,
        )
        results["stream"] = stages.run(
            "streaming replay: new fleet telemetry through the fleet bundle's C library, alerts, checkpoint",
            lambda: _stream_stage(out / "stream", seed, built["stream_bundle"]),
            _stream_summary,
        )
        results["backfill"] = stages.run(
            "backfill of the fleet history (iotengine backfill): one process, and Spark local[2] where installed",
            lambda: _backfill_stage(out / "backfill", data_dir / "fleet.parquet", results["features"]["fleet"]),
            _backfill_summary,
        )
        results["live"] = stages.run(
            "live stream over MQTT (a local mosquitto): the scorer in its own process, exactness, samples/s, latency",
            lambda: _live_stage(out / "stream" / "live", built["stream_bundle"].path),
            _live_summary,
        )
        results["compiled"] = built["bundle"]
        results["stream_bundle"] = built["stream_bundle"]
        results["families"] = families
        results["held_out_name"] = Path(holdout).name if holdout is not None else HELD_OUT_NAME
        done = list(stages.done)
    from engine.pipeline.report import write_run_report

    report_path = write_run_report(out, done, results)
    broken = missing_links(report_path)
    if broken:
        raise FileNotFoundError(f"{report_path}: links to missing files: {', '.join(broken)}")
    return report_path


def _logged(table: pa.Table, report) -> pa.Table:
    _progress_line(str(report))  # the load report (missing values per sensor) goes to run.log
    return table


def _rows_and_machines(table: pa.Table) -> str:
    machines = len(np.unique(table.column("machine_id").to_numpy()))
    return f"{table.num_rows:,} rows, {machines} machines"


def _build_stage(bundle_path: Path, out: Path, seed: int) -> dict:
    """Everything the later stages need built, side by side on every core: the bundle's native libraries (tl2cgen,
    then iotengine's generator), then its ONNX exports; its C library (into ``out/edge/src``); the replay's fleet
    bundle and its C library. Nothing here is timed, so the builds may share the cores; the benchmarks after them
    run alone."""
    from concurrent.futures import ThreadPoolExecutor

    from bench.edge import build_edge_sources
    from engine.bundle.iot import build_iot
    from engine.bundle.native import compile_bundle
    from engine.bundle.onnx import export_onnx
    from engine.models.fleet_bundle import prepare_fleet_bundle

    def native_and_onnx():
        compile_bundle(bundle_path, progress=_progress_line)
        build_iot(bundle_path, progress=_progress_line)
        return export_onnx(bundle_path, progress=_progress_line)

    with ThreadPoolExecutor(max_workers=3) as pool:
        tree_libraries = pool.submit(native_and_onnx)
        edge = pool.submit(build_edge_sources, bundle_path, out / "edge", progress=_progress_line)
        stream = pool.submit(prepare_fleet_bundle, out / "stream", seed=seed, progress=_progress_line)
        tree_libraries.result(), edge.result()
        stream_bundle = stream.result()
    from engine.bundle.format import Bundle

    return {"bundle": Bundle.load(bundle_path), "stream_bundle": stream_bundle}


def _build_summary(built: dict) -> str:
    bundle = built["bundle"]
    entries = [entry for tasks in bundle.native_sets.values() for entry in tasks.values()]
    entries += [entry for tasks in bundle.manifest.get("iot", {}).values() for entry in tasks.values()]
    size = sum((bundle.path / entry["library"]).stat().st_size for entry in entries)
    exports = sum(len(tasks) for tasks in bundle.onnx_sets.values())
    edge = (bundle.path / bundle.edge.library).stat().st_size
    return (
        f"{len(entries)} native libraries ({size / 1e6:.1f} MB), {exports} ONNX models, "
        f"C library {edge / 1e6:.1f} MB, fleet bundle with its C library"
    )


def _onnx_stage(bundle, folder: Path, held_out: pa.Table) -> dict:
    """The drift of the bundle's ONNX exports from the models' own libraries on held-out rows (CSV, Markdown)."""
    from engine.bundle.onnx import onnx_drift, unsupervised_drift
    from engine.models.autoencoder import detector_inputs
    from engine.models.tasks import inputs_and_targets
    from engine.report.markdown import markdown_table
    from engine.report.tables import write_csv

    X, y = inputs_and_targets(held_out)
    drift = onnx_drift(bundle, X, y, "lightgbm") + onnx_drift(bundle, X, y, "chosen")
    folder.mkdir(parents=True, exist_ok=True)
    detector_rows = unsupervised_drift(bundle, detector_inputs(held_out), y["anomaly_flag"])
    detector_csv = write_csv(folder / "unsupervised_drift.csv", detector_rows)
    path = folder / "onnx_drift.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(drift[0]))
        writer.writeheader()
        writer.writerows(drift)
    table = [
        "| set | task | family | score | own | ONNX fp32 | ONNX int8 | max abs diff fp32 | max abs diff int8 "
        "| decisions changed fp32 | decisions changed int8 | fp32 bytes | int8 bytes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in drift:
        entry = bundle.onnx_sets[row["set"]][row["task"]]
        table.append(
            f"| {row['set']} | {row['task']} | {row['family']} | {row['score']} | {row['own']:.4f} "
            f"| {_cell(row['fp32'], '.4f')} | {_cell(row['int8'], '.4f')} "
            f"| {_cell(row['fp32_max_abs_diff'], '.2e')} | {_cell(row['int8_max_abs_diff'], '.2e')} "
            f"| {_cell(row['fp32_decisions_changed'], ',')} | {_cell(row['int8_decisions_changed'], ',')} "
            f"| {entry['fp32_bytes']:,} | {_cell(entry.get('int8_bytes'), ',')} |"
        )
    table += ["", "The unsupervised detector's score (five regressors, max |residual|), against LightGBM's:", ""]
    table += markdown_table(
        ["runtime", "max abs diff", "mean abs diff", "alarms changed", "PR-AUC"],
        [
            [r["runtime"], f"{r['max_abs_diff']:.2e}", f"{r['mean_abs_diff']:.2e}", f"{r['alarms_changed']:,}",
             _cell(r["pr_auc"], ".4f")]
            for r in detector_rows
        ],
    )  # fmt: skip
    markdown = path.with_suffix(".md")
    markdown.write_text("\n".join(table) + "\n")
    return {"bundle": bundle, "csv": path, "markdown": markdown, "drift": drift, "unsupervised": detector_csv}


def _cell(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _onnx_summary(result: dict) -> str:
    drift = [row for row in result["drift"] if row["score"] != "r2"]  # probabilities only; hours are not comparable
    fp32 = max(row["fp32_max_abs_diff"] for row in drift)
    int8 = max((row["int8_max_abs_diff"] for row in drift if row["int8_max_abs_diff"] is not None), default=None)
    changed = sum(row["fp32_decisions_changed"] or 0 for row in drift)
    sets = Counter(row["set"] for row in result["drift"])
    int8_text = "" if int8 is None else f", int8 {int8:.1e}"
    return (
        f"{sets['chosen']} chosen and {sets['lightgbm']} LightGBM models; probabilities max |diff| fp32 "
        f"{fp32:.1e}{int8_text}; fp32 changed {changed:,} decisions"
    )


def _quick_bench(bundle_path: Path, folder: Path) -> list[Path]:
    from bench.report import write_report
    from bench.suite import run_suite

    document = run_suite(bundle_path, folder, quick=True, progress=_progress_line)
    return [*write_report(document, folder), folder / "results.json"]


def _bench_summary(files: list[Path]) -> str:
    document = json.loads(files[-1].read_text())
    if "lleaves" in document["unavailable"]:
        return f"{len(document['records'])} timings; lleaves unavailable ({document['unavailable']['lleaves'][:80]})"
    ratios = [
        r["speedup_vs_lleaves"]
        for r in document["records"]
        if r["runtime"] == "iot" and r["threads"] == 1 and r["batch"] == 10_000 and r["speedup_vs_lleaves"]
    ]
    span = f"; iot vs lleaves at batch 10,000: {min(ratios):.2f}-{max(ratios):.2f}x" if ratios else ""
    return f"{len(document['records'])} timings{span}"


def _edge_stage(bundle_path: Path, folder: Path, fleet, kaggle) -> list[Path]:
    from bench.edge import edge_report
    from bench.edge_targets import add_target_report
    from engine.bundle.format import Bundle

    files = edge_report(bundle_path, folder, fleet, kaggle, progress=_progress_line, built=True)
    tables = {"kaggle": kaggle, "fleet": fleet}
    return files + add_target_report(Bundle.load(bundle_path), folder, tables, files[0], progress=_progress_line)


def _edge_summary(files: list[Path]) -> str:
    edge = json.loads(files[1].read_text())
    timing = edge["c_bench"]
    return (
        f"iot_features {timing['features_ns_median']:,.0f} ns, iot_score {timing['score_ns_median']:,.0f} ns; "
        f"the example program matches predict within {edge['example_max_abs_diff']:.0e}"
    )


def _score_stage(bundle_path: Path, folder: Path, held_out: pa.Table) -> dict:
    from engine.scoring.comparison import backend_comparison

    return backend_comparison(bundle_path, held_out, folder)


def _score_summary(result: dict) -> str:
    done = [row for row in result["rows"] if row["seconds"] is not None]
    worst = max((row["max_abs_diff"] for row in done if row["backend"] != "lightgbm"), default=0.0)
    return f"{len(done)} backends over {result['samples']:,} rows; max |diff| from lightgbm {worst:.1e}"


def _backfill_stage(folder: Path, data_path: Path, features_path: Path) -> dict:
    from engine.backfill.report import backfill_report

    return backfill_report(folder, data_path, features_path)


def _backfill_summary(result: dict) -> str:
    runs = ", ".join(
        f"{r['engine']} {r['rows'] / r['seconds']:,.0f} rows/s{'' if r['identical'] else ' (DIFFERENT features)'}"
        for r in result["rows"]
    )
    return runs + ("" if result["spark_missing"] is None else "; Spark not run: " + result["spark_missing"])


def _live_stage(folder: Path, bundle_path: Path) -> dict:
    from bench.live_report import live_report

    return live_report(folder, bundle_path, progress=_progress_line, stream_markdown=folder.parent / "STREAM.md")


def _live_summary(result: dict) -> str:
    if result["missing"] is not None:
        return f"not run: {result['missing']}"
    return ", ".join(f"{r.mode} {r.samples_per_second:,.0f} samples/s (lost {r.lost})" for r in result["runs"]) + (
        "" if result["identical"] else ", scores DIFFERENT from the one-call scorer"
    )


def _stream_stage(folder: Path, seed: int, bundle) -> list[Path]:
    from engine.stream.report import stream_report

    return stream_report(folder, seed=seed, progress=_progress_line, bundle=bundle)


def _stream_summary(files: list[Path]) -> str:
    summary = json.loads(files[1].read_text())
    alerts = sum(q["alerts"] for q in summary["quality"])
    return f"{summary['session_samples']:,} samples at {summary['samples_per_second']:,.0f}/s, {alerts} alerts"
