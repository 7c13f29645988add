"""Tables and charts of a benchmark results document (bench/suite.py): ``BENCH.md``, CSVs and PNGs.

Every figure is read from ``results.json``, so a report can be redrawn from a saved run::

    python -m bench.report artifacts/bench
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.report.figures import pyplot, save_figure
from engine.report.markdown import markdown_table
from engine.report.tables import write_csv

__all__ = ["GOALS", "write_report"]

GOALS = (
    "native at batch 10k: at least 5x LightGBM's throughput and at least lleaves'",
    "batch-1 latency from C under 1 us for a 100-tree model",
)


def _fmt(value, digits: int = 0) -> str:
    if value is None:
        return "skipped"
    return f"{value:,.{digits}f}"


def write_report(document: dict, out: Path) -> list[Path]:
    """Write BENCH.md, records.csv, sizes.csv and the charts into ``out``; returns the files written."""
    out = Path(out)
    records, sizes = document["records"], document["sizes"]
    models = list(dict.fromkeys(r["model"] for r in records))
    runtimes = list(dict.fromkeys(r["runtime"] for r in records))
    batches = sorted({r["batch"] for r in records})
    cell = {(r["model"], r["runtime"], r["batch"]): r for r in records}
    files = []

    files.append(write_csv(out / "records.csv", records, digits=None))
    files.append(write_csv(out / "sizes.csv", sizes, digits=None))

    lines = ["# Model benchmarks", ""]
    meta = document["meta"]
    lines += [
        f"{'Quick' if meta['quick'] else 'Full'} run, {meta['created']}, {meta['machine']}, Python {meta['python']}, "
        f"LightGBM {meta['lightgbm']}; single-threaded; inputs: {meta['rows']:,} generated fleet rows (68 inputs). "
        "Medians over repeated calls; ratios are against LightGBM and lleaves measured in this same run. "
        "All records: [results.json](results.json), [records.csv](records.csv).",
        "",
    ]
    for name, reason in document["unavailable"].items():
        lines += [f"**{name} unavailable:** {reason}", ""]
    for batch in batches:
        title = "Latency at batch 1 (ns per call, median / p99)" if batch == 1 else f"Throughput at batch {batch:,}"
        lines += [f"## {title}", ""]
        if batch != 1:
            lines += ["ns per row, median (speedup vs LightGBM)", ""]
        rows = []
        for model in models:
            row = [model]
            for runtime in runtimes:
                r = cell.get((model, runtime, batch))
                if r is None:
                    row.append("n/a")
                elif batch == 1:
                    row.append(f"{_fmt(r['median_ns_per_row'])} / {_fmt(r['p99_ns_per_row'])}")
                else:
                    ratio = r.get("speedup_vs_lightgbm")
                    row.append(f"{_fmt(r['median_ns_per_row'])}" + (f" ({ratio:.2f}x)" if ratio else ""))
            rows.append(row)
        lines += [*markdown_table(["model", *runtimes], rows), ""]
    lines += ["## Accuracy against LightGBM", "", "max |difference| of predictions on the same rows", ""]
    rows = [
        [model, *(f"{cell[(model, rt, batches[0])]['max_abs_diff']:.2e}" if (model, rt, batches[0]) in cell else "n/a"
                  for rt in runtimes)]
        for model in models
    ]  # fmt: skip
    lines += [*markdown_table(["model", *runtimes], rows), ""]
    lines += ["## Size on disk (bytes)", ""]
    size_fields = [k for k in sizes[0] if k not in ("model", "trees")]
    lines += markdown_table(["model", "trees", *size_fields], [[s["model"], s["trees"], *(
        _fmt(s.get(k)) if s.get(k) is not None else "n/a" for k in size_fields)] for s in sizes])  # fmt: skip
    lines += [
        "",
        "The uint8 trees give LightGBM's predictions exactly (max |difference| 0 above) in "
        "less space than tl2cgen's code; ONNX int8 is smaller than ONNX fp32's GEMM form but rounds leaf values "
        "and compares float32 inputs.",
        "",
    ]
    e2e = document["end_to_end"]
    lines += [
        "## End to end, per sample",
        "",
        f"{e2e['path']}, {e2e['samples']:,} samples: features {_fmt(e2e['features_median_ns'])} ns, "
        f"features + five tasks {_fmt(e2e['features_and_five_tasks_median_ns'])} ns median, "
        f"{_fmt(e2e['features_and_five_tasks_p99_ns'])} ns p99.",
        "",
        "## Goals",
        "",
    ]
    lines += [*_goals(cell, models, {s["model"]: s["trees"] for s in sizes}), ""]
    charts = [_throughput_chart(cell, models, runtimes, batches, out), _size_chart(sizes, out)]
    if 1 in batches:
        charts.append(_latency_chart(cell, models, runtimes, out))
    lines += [f"![{p.stem}]({p.name})" for p in charts]
    (out / "BENCH.md").write_text("\n".join(lines) + "\n")
    return [out / "BENCH.md", *files, *charts]


def _goals(cell: dict, models: list[str], trees: dict[str, int]) -> list[str]:
    """The issue's goals, checked against this run: native at batch 10k (else the largest batch) against
    LightGBM and lleaves; batch 1 from C for the 100-tree models."""
    batches = {b for (_, _, b) in cell}
    batch = 10_000 if 10_000 in batches else max(batches)
    lines = []
    for model in models:
        native = cell.get((model, "native", batch))
        base = cell.get((model, "lightgbm", batch))
        lleaves = cell.get((model, "lleaves", batch))
        if native and base and native["median_ns_per_row"]:
            ratio = base["median_ns_per_row"] / native["median_ns_per_row"]
            text = f"- {model}, batch {batch:,}: native {ratio:.2f}x LightGBM ({'met' if ratio >= 5 else 'short'})"
            if lleaves and lleaves["median_ns_per_row"]:
                vs = lleaves["median_ns_per_row"] / native["median_ns_per_row"]
                text += f", {vs:.2f}x lleaves ({'met' if vs >= 1 else 'short'})"
            lines.append(text)
        c_single = cell.get((model, "native-c", 1))
        if c_single and c_single["median_ns_per_row"] is not None and trees.get(model) == 100:
            ns = c_single["median_ns_per_row"]
            lines.append(f"- {model}, batch 1 from C: {ns:,.0f} ns median ({'met' if ns < 1000 else 'short'}: < 1 us)")
    return lines


def _grouped_bars(ax, labels, series: dict[str, list], log: bool = True):
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [j + i * width for j in range(len(labels))]
        ax.bar(xs, [v if v else 0 for v in values], width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))], labels, rotation=20, ha="right", fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=7, ncol=2)


def _throughput_chart(cell, models, runtimes, batches, out: Path) -> Path:
    shown = [b for b in batches if b != 1]
    fig, axes = pyplot().subplots(1, len(shown), figsize=(6 * len(shown), 4.5), squeeze=False)
    for ax, batch in zip(axes[0], shown, strict=True):
        series = {rt: [(cell.get((m, rt, batch)) or {}).get("median_ns_per_row") for m in models] for rt in runtimes}
        _grouped_bars(ax, models, series)
        ax.set_title(f"batch {batch:,}: ns per row (lower is better)")
    return save_figure(fig, out / "throughput.png")


def _latency_chart(cell, models, runtimes, out: Path) -> Path:
    fig, axes = pyplot().subplots(1, 2, figsize=(12, 4.5))
    for ax, key, title in zip(axes, ("median_ns_per_row", "p99_ns_per_row"), ("median", "p99"), strict=True):
        series = {rt: [(cell.get((m, rt, 1)) or {}).get(key) for m in models] for rt in runtimes}
        _grouped_bars(ax, models, series)
        ax.set_title(f"batch 1: ns per call, {title}")
    return save_figure(fig, out / "latency_batch1.png")


def _size_chart(sizes: list[dict], out: Path) -> Path:
    keys = [k for k in sizes[0] if k not in ("model", "trees")]
    fig, ax = pyplot().subplots(figsize=(12, 4.5))
    _grouped_bars(ax, [s["model"] for s in sizes], {k: [s.get(k) for s in sizes] for k in keys})
    ax.set_title("artifact size, bytes")
    return save_figure(fig, out / "sizes.png")


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    for written in write_report(json.loads((folder / "results.json").read_text()), folder):
        print(written)
