"""The report of the unsupervised detector beside its peers: ``unsupervised.csv``, a Markdown table, and the chart
of one machine's score against its labels over time (``unsupervised_<data>_machine_<id>.png``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.models.detector_eval import DetectorResult, HoldoutScores
from engine.report.figures import pyplot, save_figure
from engine.report.markdown import markdown_table
from engine.report.tables import write_csv

__all__ = ["detector_markdown", "score_chart", "write_detector_report"]


def detector_markdown(results: list[DetectorResult]) -> list[str]:
    """The results as a Markdown table (one row per holdout and detector)."""
    rows = [
        [
            r.data,
            r.detector,
            f"{r.rows:,}",
            f"{r.positives:,}",
            f"{r.pr_auc:.3f}",
            *(
                ["", "", "", "", ""]
                if np.isnan(r.threshold)
                else [
                    f"{r.threshold:.3g}",
                    f"{r.precision:.3f}",
                    f"{r.recall:.3f}",
                    f"{r.f1:.3f}",
                    f"{r.false_alarms_per_machine_day:.2f}",
                ]
            ),
        ]
        for r in results
    ]
    header = ["data", "detector", "rows", "anomalies", "PR-AUC", "threshold", "precision", "recall", "F1",
              "false alarms / machine-day"]  # fmt: skip
    return markdown_table(header, rows)


def score_chart(series: HoldoutScores, path: Path) -> Path:
    """The autoencoder's score over time for the holdout's machine with the most anomalies, its threshold, and
    the labelled anomalies shaded."""
    machines, counts = np.unique(series.machines[series.labels == 1], return_counts=True)
    machine = machines[counts.argmax()] if machines.size else series.machines[0]
    rows = np.flatnonzero(series.machines == machine)
    rows = rows[np.argsort(series.timestamps[rows], kind="stable")]
    hours = (series.timestamps[rows] - series.timestamps[rows][0]) / 3600.0
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.6))
    score = series.scores["lightgbm_autoencoder"][rows]
    ax.plot(hours, score, lw=0.8, color="tab:blue", label="autoencoder score")
    ax.axhline(series.thresholds["lightgbm_autoencoder"], color="tab:red", lw=0.8, ls="--", label="threshold")
    top = np.nanmax(score) if np.isfinite(score).any() else 1.0
    ax.fill_between(hours, 0, top, where=series.labels[rows] == 1, color="tab:orange", alpha=0.3, step="mid",
                    label="labelled anomaly")  # fmt: skip
    ax.set_xlabel("hours")
    ax.set_ylabel("max |standardized residual|")
    ax.set_title(f"{series.data}: machine {machine}")
    ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, path)


def write_detector_report(
    results: list[DetectorResult], series: list[HoldoutScores], folder: Path, *, chart: str | None = None
) -> list[Path]:
    """``unsupervised.csv``, ``unsupervised.md`` and the chart of the holdout named ``chart`` (default: the first)
    into ``folder``; returns the files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = [write_csv(folder / "unsupervised.csv", [r.as_row() for r in results])]
    markdown = folder / "unsupervised.md"
    markdown.write_text("\n".join(detector_markdown(results)) + "\n")
    files.append(markdown)
    chosen = next((s for s in series if s.data == chart), series[0] if series else None)
    if chosen is not None:
        name = "".join(c if c.isalnum() else "_" for c in chosen.data)
        files.append(score_chart(chosen, folder / f"unsupervised_{name}.png"))
    return files
