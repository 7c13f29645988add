"""``REPORT.md`` of ``iotengine run``: the stages and their times, and a section per stage with its links."""

from __future__ import annotations

import json
from pathlib import Path

from engine.report.markdown import link, markdown_table

__all__ = ["write_run_report"]


def write_run_report(out: Path, done: list[tuple[str, float]], results: dict) -> Path:
    """Write ``out/REPORT.md`` from the stages' times and results (engine.pipeline.run); returns its path."""
    from engine.models.tasks import TASK_BY_NAME
    from engine.scoring.comparison import comparison_table
    from engine.stream.summary import format_fraction

    total = sum(seconds for _, seconds in done)
    lines = [
        "# iotengine run",
        "",
        *markdown_table(
            ["stage", "seconds"], [*([name, f"{s:.1f}"] for name, s in done), ["**total**", f"{total:.1f}"]]
        ),
        "",
        f"Everything the stages printed (their details, and any third-party output): {link(out / 'run.log', out)}.",
        "",
        "## Data",
        "",
        *(f"- {name}: {link(path, out)} ({table.num_rows:,} rows)" for name, (path, table) in results["data"].items()),
        "",
        "## Exploratory analysis",
        "",
    ]
    for name in ("kaggle", "fleet"):
        eda = results[f"eda_{name}"]
        lines.append(f"- {name}: " + ", ".join(link(p, out, p.name) for p in eda.files))
    lines += ["", "## Features", "", "The 67 features (spec order), with machine ids, timestamps and labels:", ""]
    lines += [f"- {name}: {link(p, out)}" for name, p in results["features"].items()]
    training = results["training"]
    lines += [
        "",
        "## Training",
        "",
        f"Five tasks, {results['families']} models each, 3-fold CV on the kaggle data; Bayes ceilings, feature "
        "reduction, the unsupervised detector beside its peers and raw-vs-all-features on fleet data. Full report: "
        f"{link(training.out / 'TRAINING.md', out)}; bundle: {link(training.bundle.path / 'bundle.json', out)}.",
        "",
    ]
    rows = []
    for task_name, family in training.best.items():
        metric = TASK_BY_NAME[task_name].score
        threshold = training.thresholds.get(task_name)
        score = f"{metric} {training.results[task_name][family].mean(metric):.4f}"
        ceiling = f"{training.ceilings[task_name][metric]:.4f}"
        rows.append([task_name, family, score, ceiling, None if threshold is None else f"{threshold:.4f}"])
    lines += markdown_table(["task", "chosen model", "score", "Bayes ceiling", "threshold"], rows)
    lines += ["", *(f"- {link(p, out)}" for p in training.files)]
    lines += _unsupervised_section(out, training, results["stream_bundle"])
    compiled = results["compiled"]
    lines += [
        "",
        "## Native libraries",
        "",
    ]
    rows = []
    for set_name, tasks in compiled.native_sets.items():
        for task_name, entry in tasks.items():
            library = compiled.path / entry["library"]
            size = f"{library.stat().st_size:,}"
            rows.append([set_name, task_name, entry["family"], entry["trees"], link(library, out), size])
    lines += markdown_table(["set", "task", "family", "trees", "library", "bytes"], rows)
    onnx = results["onnx"]
    lines += [
        "",
        "## ONNX",
        "",
        "Every chosen model as ONNX fp32 (onnxmltools for LightGBM, skl2onnx for scikit-learn models), and each "
        "task's LightGBM model also as int8 (GEMM form quantized by onnxruntime), scored against the models' own "
        f"libraries on {results['held_out_name']}: {link(onnx['csv'], out)}",
        "",
        onnx["markdown"].read_text(),
        "## Model benchmarks (quick)",
        "",
        "Every runtime side by side on the bundle's LightGBM models and a standard 500-tree model: "
        + ", ".join(link(p, out) for p in results["bench"]),
        "",
    ]
    edge_files = results["edge"]
    edge = json.loads(edge_files[1].read_text())
    timing = edge["c_bench"]
    lines += [
        "## C edge library",
        "",
        "The chosen models and the 67 features as dependency-free C99 (`iotengine.h`): "
        + ", ".join(link(p, out) for p in edge_files)
        + ", sources in [edge/src/](edge/src/).",
        "",
        f"- `iot_state` {timing['state_bytes']} bytes per machine; library text "
        f"{edge['sizes_O2']['total']['text']:,} bytes (gcc -O2).",
        f"- Per sample in C: `iot_features` {timing['features_ns_median']:,.0f} ns, `iot_score` (five tasks) "
        f"{timing['score_ns_median']:,.0f} ns, `iot_score_many` {timing['score_many_ns_median']:,.0f} ns "
        f"(medians, {timing['samples']:,} samples).",
        f"- The example program's scores differ from `bundle.predict` by at most {edge['example_max_abs_diff']:.1e}.",
        *_detector_in_c(edge),
        *_targets_in_c(edge_files),
        "",
    ]
    score = results["score"]
    lines += [
        "## Batch scoring",
        "",
        f"`iotengine score` of {results['held_out_name']} with every backend: {link(score['markdown'], out)}, "
        f"{link(score['csv'], out)}.",
        "",
        *comparison_table(score["rows"], prefix=f"{score['markdown'].parent.relative_to(out)}/"),
        "",
    ]
    stream_files = results["stream"]
    summary = json.loads(stream_files[1].read_text())
    lines += [
        "## Streaming",
        "",
        f"{summary['session_samples']:,} samples of new fleet telemetry ({summary['machines']} machines) replayed "
        f"through `StreamScorer` and the C library of a fleet-trained bundle at {summary['samples_per_second']:,.0f} "
        "samples/s, with alerts and a checkpoint: " + ", ".join(link(p, out) for p in stream_files) + ".",
        "",
        *markdown_table(
            ["task", "alerts", "labelled episodes", "episodes alerted", "precision", "recall"],
            [
                [
                    q["task"],
                    q["alerts"],
                    q["episodes"],
                    q["episodes_alerted"],
                    format_fraction(q["precision"]),
                    format_fraction(q["recall"]),
                ]
                for q in summary["quality"]
            ],
        ),
        "",
        f"Latency per sample p50 {summary['latency_us'].get('p50', float('nan')):,.0f} µs, "
        f"p99 {summary['latency_us'].get('p99', float('nan')):,.0f} µs (a tick of {summary['machines']} samples "
        f"per call); late samples {summary['late']:,}, missing sensor values {sum(summary['missing'].values()):,}.",
        "",
        f"![streaming replay]({stream_files[-1].relative_to(out)})",
        "",
    ]
    from bench.live_report import load_table

    live = results["live"]
    lines += ["### Live, over MQTT", ""]
    if live["missing"] is not None:
        lines += [f"Not run: {live['missing']}.", ""]
    else:
        lines += [
            f"`iotengine stream --mqtt` against a local mosquitto, end to end ({link(live['files'][0], out)}); "
            f"scores identical to the one-call scorer: {'yes' if live['identical'] else '**no**'}.",
            "",
            *load_table(live["runs"]),
            "",
        ]
    backfilled = results["backfill"]
    lines += [
        "## Backfill",
        "",
        "`iotengine backfill` of the fleet data: features and final machine states, compared bit for bit with "
        f"`iotengine features` ({link(backfilled['markdown'], out)}):",
        "",
        *markdown_table(
            ["engine", "rows", "seconds", "features identical"],
            [
                [r["engine"], f"{r['rows']:,}", f"{r['seconds']:.1f}", "yes" if r["identical"] else "**no**"]
                for r in backfilled["rows"]
            ],
        ),
        "",
        *([] if backfilled["spark_missing"] is None else [f"Spark was not run: {backfilled['spark_missing']}.", ""]),
    ]
    report_path = out / "REPORT.md"
    report_path.write_text("\n".join(lines) + "\n")
    return report_path


def _unsupervised_section(out: Path, training, stream_bundle) -> list[str]:
    """The unsupervised detector of both bundles beside its peers (engine/models/detector_eval.py)."""
    from engine.models.detector_eval import DetectorResult
    from engine.models.detector_report import detector_markdown

    lines = [
        "",
        "## Unsupervised detector",
        "",
        "Five per-sensor LightGBM regressors in each bundle (no anomaly label needed to score or to set the "
        "threshold), beside IsolationForest and a rolling z-score rule fitted on the same samples, thresholds at "
        "the same false-alarm rate. The main bundle's, on the held-out rows:",
        "",
        *detector_markdown(training.unsupervised),
        "",
    ]
    fleet = [DetectorResult(**{k: float("nan") if v is None else v for k, v in row.items()})
             for row in stream_bundle.manifest.get("unsupervised_evaluation", [])]  # fmt: skip
    if fleet:
        report = stream_bundle.path.parent / "unsupervised"
        lines += [
            "The fleet bundle's (the stream's), fitted on 150 machines and evaluated on 50 others: "
            + ", ".join(link(p, out) for p in sorted(report.iterdir())),
            "",
            *detector_markdown(fleet),
            "",
        ]
    return lines


def _targets_in_c(edge_files: list[Path]) -> list[str]:
    """REPORT.md's lines of the edge report's targets (targets.json: bench/edge_targets.py)."""
    targets = next((p for p in edge_files if p.name == "targets.json"), None)
    if targets is None:
        return []
    report = json.loads(targets.read_text())
    builds = ", ".join(
        f"{b['target']} ({b['real']}) {b['flash_bytes'] / 1024:,.0f} KiB, stack {b['stack_iot_score']:,} B"
        for b in report["builds"].values()
    )
    drift = ", ".join(f"{name} {d['rows_with_equal_decisions']:.2%}" for name, d in report["float_drift"].items())
    missing = "; not measured: " + ", ".join(report["not_measured"]) if report["not_measured"] else ""
    return [
        f"- Targets, the {report['models']} set as {report['trees']} (-Os, flash of a minimal image): {builds}"
        f"{missing}.",
        f"- float against double, rows with the same decisions: {drift}.",
    ]


def _detector_in_c(edge: dict) -> list[str]:
    timing, sizes = edge["c_bench"], edge.get("unsupervised_sizes_Os") or {}
    if timing.get("unsupervised_ns_median") is None or not sizes:
        return []
    total = sizes["total"]["text"] + sizes["total"]["data"]
    return [
        f"- The unsupervised detector alone {timing['unsupervised_ns_median']:,.0f} ns per sample; its five "
        f"regressors {total:,} bytes at gcc -Os."
    ]
