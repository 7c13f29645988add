"""Exploratory analysis of a telemetry table: a Markdown summary, a CSV of sensor statistics and PNG plots.

Writes into one folder:

- ``summary.md``: rows, machines, time span, label rates, per-sensor statistics, missing counts, and links to
  the plots;
- ``sensor_stats.csv``: the per-sensor statistics as a table;
- ``sensors_timeseries.png``: the five sensors over time for a few machines, anomalous samples marked;
- ``distributions_by_label.png``: each sensor's distribution split by ``anomaly_flag`` and by
  ``maintenance_required`` (when the table has labels);
- ``correlation.png``: correlation heatmap of sensors, status and numeric labels.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.data.loading import load_telemetry
from engine.data.schema import FAILURE_TYPES, LABEL_COLUMNS, MACHINE_STATUSES, SENSORS
from engine.report.figures import pyplot, save_figure
from engine.report.markdown import markdown_table

__all__ = ["EdaResult", "run_eda", "sensor_statistics"]

_STAT_NAMES = ("count", "missing", "mean", "std", "min", "p5", "p50", "p95", "max")


@dataclass
class EdaResult:
    """Paths of what :func:`run_eda` wrote, and the numbers in the summary."""

    out_dir: Path
    summary: Path
    files: list[Path] = field(default_factory=list)
    stats: dict[str, dict[str, float]] = field(default_factory=dict)


def sensor_statistics(table: pa.Table) -> dict[str, dict[str, float]]:
    """Per sensor: count of finite values, missing values, mean, population std, min, p5, p50, p95, max.

    Examples
    --------
    >>> import pyarrow as pa
    >>> from engine.data.synthetic import generate
    >>> stats = sensor_statistics(generate(20_000, seed=3))
    >>> round(stats["temperature"]["mean"]), round(stats["humidity"]["min"]), stats["pressure"]["missing"]
    (75, 30, 0.0)
    """
    stats = {}
    for name in SENSORS:
        values = table.column(name).to_numpy()
        finite = values[np.isfinite(values)]
        row = {"count": float(finite.size), "missing": float(values.size - finite.size)}
        if finite.size:
            p5, p50, p95 = np.percentile(finite, [5, 50, 95])
            row.update(
                mean=float(finite.mean()),
                std=float(finite.std()),
                min=float(finite.min()),
                p5=float(p5),
                p50=float(p50),
                p95=float(p95),
                max=float(finite.max()),
            )
        else:
            row.update({k: float("nan") for k in _STAT_NAMES[2:]})
        stats[name] = row
    return stats


def run_eda(source, out_dir, *, title: str = "Telemetry", machines_to_plot: int = 3) -> EdaResult:
    """Analyse telemetry and write the summary, statistics and plots into ``out_dir``.

    Parameters
    ----------
    source : path, pyarrow.Table or pandas.DataFrame
        Anything :func:`engine.data.loading.load_telemetry` accepts.
    out_dir : path
        Created if needed.
    title : str, default="Telemetry"
        Heading of the summary.
    machines_to_plot : int, default=3
        Machines in the time-series plot (those with the most anomalous samples, then the most samples).

    Returns
    -------
    EdaResult
    """
    table = load_telemetry(source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = EdaResult(out_dir=out, summary=out / "summary.md", stats=sensor_statistics(table))

    stats_csv = out / "sensor_stats.csv"
    with open(stats_csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sensor", *_STAT_NAMES])
        for name, row in result.stats.items():
            writer.writerow([name, *(_format(row[k]) for k in _STAT_NAMES)])
    result.files.append(stats_csv)

    plots = [
        ("Sensors over time", _plot_timeseries(table, out / "sensors_timeseries.png", machines_to_plot)),
        ("Distributions by label", _plot_distributions(table, out / "distributions_by_label.png")),
        ("Correlations", _plot_correlation(table, out / "correlation.png")),
    ]
    result.files.extend(path for _, path in plots)

    result.summary.write_text(_summary_markdown(table, title, result.stats, stats_csv, plots))
    result.files.insert(0, result.summary)
    return result


# ----------------------------------------------------------------------------------------------------


def _format(value: float) -> str:
    if not np.isfinite(value):
        return ""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def _summary_markdown(table, title, stats, stats_csv, plots) -> str:
    timestamps = table.column("timestamp")
    first, last = pc.min(timestamps).as_py(), pc.max(timestamps).as_py()
    days = (last - first).total_seconds() / 86400
    machine_ids = table.column("machine_id")
    facts = [
        ["rows", f"{table.num_rows:,}"],
        ["machines", f"{len(pc.unique(machine_ids)):,}"],
        ["time span", f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC ({days:.2f} days)"],
    ]
    status = table.column("machine_status").to_numpy()
    for code, name in MACHINE_STATUSES.items():
        facts.append([f"machine_status {code} ({name})", f"{np.mean(status == code):.1%}"])
    for label in LABEL_COLUMNS:
        if label not in table.column_names:
            continue
        if label == "failure_type":
            codes = table.column(label).combine_chunks().indices.to_numpy()
            for code, name in enumerate(FAILURE_TYPES[1:], start=1):
                facts.append([f"failure_type = {name}", f"{np.mean(codes == code):.2%}"])
        elif label == "predicted_remaining_life":
            life = table.column(label).to_numpy()
            facts.append(["predicted_remaining_life, median hours", f"{np.median(life):.1f}"])
        elif label == "downtime_risk":
            risk = table.column(label).to_numpy()
            facts.append(["downtime_risk >= 0.5", f"{np.mean(risk >= 0.5):.2%}"])
        else:
            facts.append([f"{label} = 1", f"{np.mean(table.column(label).to_numpy() == 1):.2%}"])
    lines = [
        f"# {title}",
        "",
        *markdown_table(["what", "value"], facts),
        "",
        f"## Sensors ([CSV]({stats_csv.name}))",
        "",
        *markdown_table(
            ["sensor", *_STAT_NAMES], [[name, *(_format(row[k]) for k in _STAT_NAMES)] for name, row in stats.items()]
        ),
    ]
    missing_total = int(sum(row["missing"] for row in stats.values()))
    lines += ["", f"Missing sensor values (empty, NaN or infinite): {missing_total:,} in all.", ""]
    for caption, path in plots:
        lines += [f"## {caption}", "", f"![{caption}]({path.name})", ""]
    return "\n".join(lines)


def _plot_timeseries(table: pa.Table, path: Path, machines_to_plot: int) -> Path:
    machine_ids = table.column("machine_id").to_numpy()
    has_anomaly = "anomaly_flag" in table.column_names
    anomaly = table.column("anomaly_flag").to_numpy() == 1 if has_anomaly else np.zeros(len(machine_ids), bool)
    ids, counts = np.unique(machine_ids, return_counts=True)
    anomalous_counts = np.array([np.count_nonzero(anomaly[machine_ids == i]) for i in ids])
    order = np.lexsort((-counts, -anomalous_counts))
    chosen = ids[order[:machines_to_plot]]

    times = table.column("timestamp").cast("int64").to_numpy().astype("datetime64[s]")
    fig, axes = pyplot().subplots(len(SENSORS), 1, figsize=(12, 2.1 * len(SENSORS)), sharex=True)
    for machine in chosen:
        rows = np.flatnonzero(machine_ids == machine)
        rows = rows[np.argsort(times[rows], kind="stable")]
        for ax, sensor in zip(axes, SENSORS, strict=True):
            values = table.column(sensor).to_numpy()[rows]
            ax.plot(times[rows], values, lw=0.8, label=f"machine {machine}")
            marked = rows[anomaly[rows]]
            if marked.size:
                ax.scatter(times[marked], table.column(sensor).to_numpy()[marked], s=12, color="red", zorder=3)
    for ax, sensor in zip(axes, SENSORS, strict=True):
        ax.set_ylabel(sensor, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=7, ncol=len(chosen))
    marker = "red dots: anomaly_flag = 1" if has_anomaly else "no labels"
    axes[0].set_title(f"Sensors over time ({marker})")
    save_figure(fig, path, dpi=90)
    return path


def _plot_distributions(table: pa.Table, path: Path) -> Path:
    labels = [c for c in ("anomaly_flag", "maintenance_required") if c in table.column_names]
    rows = max(1, len(labels))
    fig, axes = pyplot().subplots(rows, len(SENSORS), figsize=(3.2 * len(SENSORS), 2.6 * rows), squeeze=False)
    for r in range(rows):
        split = table.column(labels[r]).to_numpy() if labels else None
        for c, sensor in enumerate(SENSORS):
            ax = axes[r, c]
            values = table.column(sensor).to_numpy()
            finite = np.isfinite(values)
            if not finite.any():
                continue
            bins = np.histogram_bin_edges(values[finite], bins=40)
            if split is None:
                ax.hist(values[finite], bins=bins, color="tab:blue", alpha=0.8)
            else:
                for flag, color in ((0, "tab:blue"), (1, "tab:red")):
                    chosen = finite & (split == flag)
                    if chosen.any():
                        ax.hist(
                            values[chosen],
                            bins=bins,
                            density=True,
                            alpha=0.55,
                            color=color,
                            label=f"{labels[r]} = {flag}",
                        )
            ax.set_title(sensor, fontsize=9)
            ax.tick_params(labelsize=7)
        if labels:
            axes[r, 0].legend(fontsize=7)
    save_figure(fig, path, dpi=90)
    return path


def _plot_correlation(table: pa.Table, path: Path) -> Path:
    names = [*SENSORS, "machine_status"]
    names += [c for c in LABEL_COLUMNS if c in table.column_names and c != "failure_type"]
    matrix = np.column_stack([table.column(n).to_numpy().astype(np.float64) for n in names])
    complete = np.isfinite(matrix).all(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(matrix[complete], rowvar=False)
    fig, ax = pyplot().subplots(figsize=(1.0 + 0.75 * len(names), 0.6 + 0.7 * len(names)))
    image = ax.imshow(corr, vmin=-1, vmax=1, cmap="coolwarm")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            if np.isfinite(corr[i, j]):
                ax.text(j, i, f"{corr[i, j]:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title("Pearson correlation")
    save_figure(fig, path, dpi=90)
    return path
