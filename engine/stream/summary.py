"""The summary of a replay: counts, alert quality against labels, throughput and latency percentiles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.report.markdown import markdown_table
from engine.stream.alerts import (
    AlertQuality,
)

__all__ = ["LATENCY_PERCENTILES", "StreamSummary", "format_fraction", "latency_percentiles", "latency_table"]


LATENCY_PERCENTILES = (50, 90, 99, 99.9)


@dataclass
class StreamSummary:
    """What a replay did. Counts cover the whole stream (across restarts) unless named ``session``."""

    source: str
    backend: str
    models: str
    rows: int
    resumed_from: int
    position: int
    session_samples: int
    accepted: int
    late: int
    missing: dict[str, int]
    machines: int
    alerts: dict[str, int]
    active_alerts: dict[str, int]
    quality: list[AlertQuality]
    latency_us: dict[str, float]
    seconds: float
    interrupted: bool

    @property
    def finished(self) -> bool:
        return self.position >= self.rows

    @property
    def samples_per_second(self) -> float:
        return self.session_samples / self.seconds if self.seconds > 0 else float("nan")

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "backend": self.backend,
            "models": self.models,
            "rows": self.rows,
            "resumed_from": self.resumed_from,
            "position": self.position,
            "finished": self.finished,
            "interrupted": self.interrupted,
            "session_samples": self.session_samples,
            "seconds": self.seconds,
            "samples_per_second": self.samples_per_second,
            "accepted": self.accepted,
            "late": self.late,
            "missing": self.missing,
            "machines": self.machines,
            "alerts": self.alerts,
            "active_alerts": self.active_alerts,
            "quality": [
                {
                    "task": q.task,
                    "alerts": q.alerts,
                    "hits": q.hits,
                    "episodes": q.episodes,
                    "episodes_alerted": q.episodes_alerted,
                    "precision": _number(q.precision),
                    "recall": _number(q.recall),
                }
                for q in self.quality
            ],
            "latency_us": self.latency_us,
        }

    def markdown(self) -> str:
        """The summary as Markdown tables."""
        state = "interrupted" if self.interrupted else ("finished" if self.finished else "stopped at its limit")
        lines = [
            f"- source: {self.source}; backend `{self.backend}`, model set `{self.models}`",
            f"- {state} at sample {self.position:,} of {self.rows:,}"
            + (f" (resumed at {self.resumed_from:,})" if self.resumed_from else ""),
            f"- this run: {self.session_samples:,} samples in {self.seconds:.2f} s "
            f"({self.samples_per_second:,.0f} samples/s)",
            f"- samples scored {self.accepted:,}, late (rejected, spec policy) {self.late:,}, machines {self.machines}",
            "- missing sensor values (scored as missing, spec policy): "
            + ", ".join(f"{name} {count:,}" for name, count in self.missing.items()),
            "",
        ]
        by_task = {q.task: q for q in self.quality}
        rows = []
        for task, count in self.alerts.items():
            q = by_task.get(task)
            cells = (
                [f"{q.episodes:,}", f"{q.episodes_alerted:,}", format_fraction(q.precision), format_fraction(q.recall)]
                if q
                else ["no labels", "", "", ""]
            )
            rows.append([task, f"{count:,}", f"{self.active_alerts.get(task, 0):,}", *cells])
        header = ["task", "alerts", "active at the end", "labelled episodes", "episodes alerted", "precision", "recall"]
        lines += [*markdown_table(header, rows), "", *latency_table(self.latency_us)]
        return "\n".join(lines)


def latency_percentiles(latency_us: np.ndarray) -> dict[str, float]:
    """``{"p50": ..., "p99.9": ..., "max": ...}`` of per-sample latencies in µs ({} for none)."""
    if not latency_us.size:
        return {}
    values = np.percentile(latency_us, LATENCY_PERCENTILES)
    latency = {f"p{p:g}": float(v) for p, v in zip(LATENCY_PERCENTILES, values, strict=True)}
    latency["max"] = float(latency_us.max())
    return latency


def latency_table(latency_us: dict[str, float], label: str = "latency per sample") -> list[str]:
    cells = [f"{latency_us.get(f'p{p:g}', float('nan')):,.1f}" for p in LATENCY_PERCENTILES]
    return markdown_table(
        [label, *(f"p{p:g}" for p in LATENCY_PERCENTILES), "max"],
        [["µs", *cells, f"{latency_us.get('max', float('nan')):,.1f}"]],
    )


def _number(value: float) -> float | None:
    """JSON has no NaN: an undefined ratio is null."""
    return None if np.isnan(value) else float(value)


def format_fraction(value: float | None) -> str:
    """A precision or recall for a table: undefined ratios (NaN here, null in summary.json) are "n/a"."""
    return "n/a" if value is None or np.isnan(value) else f"{value:.3f}"
