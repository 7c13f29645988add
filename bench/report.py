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

__all__ = ["GOALS", "label", "write_report"]

GOALS = (
    "iot at batch 10k on one thread: at least 1.5x lleaves and 2x tl2cgen (native) on every model, "
    "at most 1.5 ns per tree per row for 31-leaf trees",
    "iot on two threads: at least 2.5x lleaves on one thread",
    "batch 1 from C (iot-c): at most 2.5 ns per tree; from Python at most 1.5 us more than from C",
    "size: iot's library no larger than tl2cgen's",
)
PEERS = ("lleaves", "native", "lightgbm")  # what the winner tables compare iot with


def label(record: dict) -> str:
    """The column of a record: its runtime, with the number of threads when it is more than one."""
    return record["runtime"] if record.get("threads", 1) == 1 else f"{record['runtime']} x{record['threads']}"


def _fmt(value, digits: int = 0) -> str:
    if value is None:
        return "skipped"
    return f"{value:,.{digits}f}"


def _ns(cell: dict, key) -> float | None:
    record = cell.get(key)
    return None if record is None else record.get("median_ns_per_row")


def write_report(document: dict, out: Path) -> list[Path]:
    """Write BENCH.md, records.csv, sizes.csv and the charts into ``out``; returns the files written."""
    out = Path(out)
    records, sizes = document["records"], document["sizes"]
    models = list(dict.fromkeys(r["model"] for r in records))
    runtimes = list(dict.fromkeys(label(r) for r in records))
    batches = sorted({r["batch"] for r in records})
    cell = {(r["model"], label(r), r["batch"]): r for r in records}
    trees = {s["model"]: s["trees"] for s in sizes}
    files = []

    files.append(write_csv(out / "records.csv", records, digits=None))
    files.append(write_csv(out / "sizes.csv", sizes, digits=None))

    lines = ["# Model benchmarks", ""]
    meta = document["meta"]
    lines += [
        f"{'Quick' if meta['quick'] else 'Full'} run, {meta['created']}, {meta['machine']}, Python {meta['python']}, "
        f"LightGBM {meta['lightgbm']}; one thread unless a column says x2; inputs: {meta['rows']:,} distinct "
        "generated fleet rows (68 inputs). Medians over repeated calls; ratios are against runtimes measured in "
        "this same run. All records: [results.json](results.json), [records.csv](records.csv).",
        "",
    ]
    for name, reason in document["unavailable"].items():
        lines += [f"**{name} unavailable:** {reason}", ""]
    winners = _winners_chart(cell, models, batches, out)
    lines += [*_winner_tables(cell, models, batches, trees), f"![{winners.stem}]({winners.name})", ""]
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
        [model, *(f"{cell[(model, rt, batches[-1])]['max_abs_diff']:.2e}" if (model, rt, batches[-1]) in cell
                  else "n/a" for rt in runtimes)]
        for model in models
    ]  # fmt: skip
    lines += [*markdown_table(["model", *runtimes], rows), ""]
    lines += ["## Size on disk (bytes)", ""]
    size_fields = [k for k in sizes[0] if k not in ("model", "trees")]
    lines += markdown_table(["model", "trees", *size_fields], [[s["model"], s["trees"], *(
        _fmt(s.get(k)) if s.get(k) is not None else "n/a" for k in size_fields)] for s in sizes])  # fmt: skip
    lines += ["", "Bytes per tree of each compiled form:", ""]
    forms = [k for k in ("iot_so", "tl2cgen_so", "uint8_so", "lleaves_so") if any(k in s for s in sizes)]
    lines += markdown_table(["model", *forms], [[s["model"], *(
        _fmt(s[k] / s["trees"]) if s.get(k) else "n/a" for k in forms)] for s in sizes])  # fmt: skip
    lines += [
        "",
        "The uint8 trees give LightGBM's predictions exactly (max |difference| 0 above) in "
        "less space than tl2cgen's code; ONNX int8 is smaller than ONNX fp32's GEMM form but rounds leaf values "
        "and compares float32 inputs.",
        "",
    ]
    detector = document.get("unsupervised", [])
    if detector:
        lines += [
            "## The unsupervised detector (five regressors together)",
            "",
            "Sum of the five per-sensor regressors' median ns per row and sizes, one thread (the residuals and "
            "the score add a few ns on top: edge/EDGE.md times the whole of it in C).",
            "",
        ]
        detector_runtimes = list(dict.fromkeys(d["runtime"] for d in detector))
        by_cell = {(d["runtime"], d["batch"]): d for d in detector}
        header = ["", *(f"batch {b:,} (ns/row)" for b in batches), "size (bytes)", "max abs diff"]
        rows = []
        for runtime in detector_runtimes:
            cells = [by_cell.get((runtime, b)) for b in batches]
            size = next((c["size_bytes"] for c in cells if c and c["size_bytes"] is not None), None)
            rows.append([runtime, *(_fmt(c["median_ns_per_row"]) if c else "n/a" for c in cells), _fmt(size),
                         f"{max(c['max_abs_diff'] for c in cells if c):.2e}"])  # fmt: skip
        lines += [*markdown_table(header, rows), ""]
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
    lines += [*_goals(cell, models, trees, sizes), ""]
    charts = [winners, _throughput_chart(cell, models, runtimes, batches, out), _size_chart(sizes, out)]
    if 1 in batches:
        charts.append(_latency_chart(cell, models, runtimes, out))
    lines += [f"![{p.stem}]({p.name})" for p in charts[1:]]
    (out / "BENCH.md").write_text("\n".join(lines) + "\n")
    return [out / "BENCH.md", *files, *charts]


def _winner_tables(cell: dict, models: list[str], batches: list[int], trees: dict[str, int]) -> list[str]:
    """Per model, per batch: the fastest runtime on one thread, by how much it beats the next one, and iot
    (iotengine's generator) against each peer."""
    lines = ["## Who wins", "", "Fastest runtime on one thread per batch size, and iot's ratio to each peer "
             "(above 1: iot is faster). ns per row, median.", ""]  # fmt: skip
    for model in models:
        rows = []
        for batch in batches:
            timed = sorted(
                (r["median_ns_per_row"], name)
                for (m, name, b), r in cell.items()
                if m == model and b == batch and r.get("threads", 1) == 1 and r.get("median_ns_per_row")
            )
            if not timed:
                continue
            best = timed[0]
            margin = f"{timed[1][0] / best[0]:.2f}x over {timed[1][1]}" if len(timed) > 1 else "alone"
            row = [f"{batch:,}", best[1], _fmt(best[0]), margin]
            own = "iot-c" if batch == 1 else "iot"
            for peer in PEERS:
                mine, theirs = _ns(cell, (model, own, batch)), _ns(cell, (model, peer, batch))
                row.append(f"{theirs / mine:.2f}x" if mine and theirs else "n/a")
            mine = _ns(cell, (model, own, batch))
            row.append(f"{mine / trees[model]:.2f}" if mine and trees.get(model) else "n/a")
            rows.append(row)
        header = ["batch", "fastest", "ns/row", "margin", *(f"iot vs {peer}" for peer in PEERS), "iot ns/tree"]
        lines += [f"**{model}** ({trees.get(model, '?')} trees)", "", *markdown_table(header, rows), ""]
    lines += ["At batch 1, iot means iot-c (the C call); the peers are called from Python, but for native.", ""]
    return lines


def _goals(cell: dict, models: list[str], trees: dict[str, int], sizes: list[dict]) -> list[str]:
    """The goals of GOALS, checked against this run (batch 10,000, else the largest batch)."""
    batches = {b for (_, _, b) in cell}
    batch = 10_000 if 10_000 in batches else max(batches)
    mark = {True: "met", False: "not met"}
    lines = [f"- {goal}" for goal in GOALS] + [""]
    size_of = {s["model"]: s for s in sizes}
    for model in models:
        iot, native = _ns(cell, (model, "iot", batch)), _ns(cell, (model, "native", batch))
        lleaves, two = _ns(cell, (model, "lleaves", batch)), _ns(cell, (model, "iot x2", batch))
        parts = []
        if iot and lleaves:
            parts.append(f"{lleaves / iot:.2f}x lleaves ({mark[lleaves / iot >= 1.5]})")
        if iot and native:
            parts.append(f"{native / iot:.2f}x tl2cgen ({mark[native / iot >= 2]})")
        if iot:
            parts.append(f"{iot / trees[model]:.2f} ns per tree")
        if two and lleaves:
            parts.append(f"x2 threads {lleaves / two:.2f}x lleaves ({mark[lleaves / two >= 2.5]})")
        single, python = _ns(cell, (model, "iot-c", 1)), _ns(cell, (model, "iot", 1))
        if single:
            per_tree = single / trees[model]
            parts.append(f"batch 1 from C {per_tree:.2f} ns per tree ({mark[per_tree <= 2.5]})")
        if single and python:
            parts.append(f"Python +{(python - single) / 1000:.2f} us ({mark[python - single <= 1500]})")
        sized = size_of.get(model, {})
        if sized.get("iot_so") and sized.get("tl2cgen_so"):
            ratio = sized["iot_so"] / sized["tl2cgen_so"]
            parts.append(f"size {ratio:.2f}x tl2cgen's ({mark[ratio <= 1.0]})")
        lines.append(f"- {model}, batch {batch:,}: " + "; ".join(parts))
    return lines


def _winners_chart(cell, models, batches, out: Path) -> Path:
    """iot on one and two threads, and tl2cgen, as speedups over lleaves at the largest batch."""
    batch = max(batches)
    fig, ax = pyplot().subplots(figsize=(10, 4.5))
    series = {}
    for runtime in ("iot", "iot x2", "native", "lightgbm"):
        values = []
        for model in models:
            mine, base = _ns(cell, (model, runtime, batch)), _ns(cell, (model, "lleaves", batch))
            values.append(base / mine if mine and base else None)
        series[runtime] = values
    _grouped_bars(ax, models, series, log=False)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_title(f"batch {batch:,}: speedup over lleaves on one thread (higher is better; line: lleaves)")
    return save_figure(fig, out / "winners.png")


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
