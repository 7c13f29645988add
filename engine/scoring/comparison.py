"""The backend comparison of the run's batch-scoring stage: the same held-out file scored once per backend, the
differences from the models' own libraries, the decisions that changed, and the time of the five models alone
(SCORE.md)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from engine.errors import BundleError
from engine.scoring.batch import score_file

__all__ = ["COMPARED_BACKENDS", "backend_comparison", "comparison_table"]


COMPARED_BACKENDS = ("lightgbm", "native", "iot", "onnx", "c")


def backend_comparison(bundle, table: pa.Table, folder: str | os.PathLike) -> dict:
    """:func:`score_file` of ``table`` with every backend into ``folder/scores_<backend>.parquet``, and how each
    differs from the models' own libraries (``lightgbm``): max |difference| of the probabilities and hours, and
    the decisions changed. Writes ``SCORE.md`` and ``score.csv``; a backend the bundle cannot run is listed with
    why. Returns the rows, the number of samples and the two files."""
    from compile.errors import CompileError
    from engine.bundle.format import Bundle
    from engine.data.loading import save_telemetry

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    data = save_telemetry(table, folder / "telemetry.parquet")
    rows, reference = [], None
    for backend in COMPARED_BACKENDS:
        out = folder / f"scores_{backend}.parquet"
        started = time.perf_counter()
        try:
            scores = score_file(bundle, data, out, backend=backend, progress=False)
        except (BundleError, CompileError) as exc:
            rows.append({"backend": backend, "seconds": None, "unavailable": str(exc)})
            continue
        seconds = time.perf_counter() - started
        reference = scores if reference is None else reference
        rows.append({"backend": backend, "seconds": seconds, "rows_per_second": table.num_rows / seconds})
        rows[-1].update(_differences(scores, reference))
        rows[-1]["file"] = out.name
    # The chosen models alone, on inputs computed once: the model runtimes side by side (the C library computes
    # its own features, so it has no models-only time).
    X = bundle.inputs(table)
    for row in rows:
        if row["seconds"] is not None and row["backend"] != "c":
            row["models_ns_per_row"] = _models_ns_per_row(bundle, X, row["backend"])
    markdown = folder / "SCORE.md"
    markdown.write_text(_comparison_markdown(rows, table.num_rows))
    csv_path = folder / "score.csv"
    fields = (
        "backend",
        "seconds",
        "rows_per_second",
        "models_ns_per_row",
        "max_abs_diff",
        "decisions_changed",
        "file",
        "unavailable",
    )
    pa_csv.write_csv(pa.Table.from_pylist([{key: row.get(key) for key in fields} for row in rows]), csv_path)
    return {"rows": rows, "samples": table.num_rows, "markdown": markdown, "csv": csv_path}


def _models_ns_per_row(bundle, X: np.ndarray, backend: str, repeats: int = 5) -> float:
    """Median over ``repeats`` calls of ``predict_inputs`` on all of ``X``, in ns per row (after one warm-up)."""
    bundle.predict_inputs(X, backend=backend)
    times = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        bundle.predict_inputs(X, backend=backend)
        times.append((time.perf_counter_ns() - started) / max(1, X.shape[0]))
    return float(np.median(times))


def _differences(scores: pa.Table, reference: pa.Table) -> dict:
    """Max |difference| of the numeric score columns and the number of decisions (and failure types) changed."""
    names = [n for n in scores.column_names if n not in ("machine_id", "timestamp")]
    diff, changed = 0.0, 0
    for name in names:
        got = scores.column(name).to_numpy(zero_copy_only=False)
        expected = reference.column(name).to_numpy(zero_copy_only=False)
        if name.endswith("_decision") or name == "failure_type":
            changed += int(np.sum(got != expected))
        else:
            gap = np.abs(got - expected)
            gap[np.isnan(got) & np.isnan(expected)] = 0.0  # a missing sensor's residual is NaN on every backend
            diff = max(diff, float(np.max(gap, initial=0.0)))
    return {"max_abs_diff": diff, "decisions_changed": changed}


def _comparison_markdown(rows: list[dict], samples: int) -> str:
    lines = [
        "# Batch scoring",
        "",
        f"`iotengine score` of {samples:,} rows of held-out telemetry ([telemetry.parquet](telemetry.parquet)) with "
        "the chosen models, once per backend, compared with the models' own libraries (`lightgbm`): the largest "
        "difference of any probability or remaining-life hour, and the decisions (at the bundle's thresholds, and "
        "the most probable failure type) that changed. The seconds include reading the file and the features; the "
        "five chosen models alone are timed on inputs computed once (median of 5 calls on all rows).",
        "",
        *comparison_table(rows, prefix=""),
    ]
    return "\n".join(lines) + "\n"


def comparison_table(rows: list[dict], prefix: str) -> list[str]:
    """The Markdown table of :func:`backend_comparison`'s rows; score files are linked as ``prefix + name``."""
    lines = [
        "| backend | seconds | rows/s | the five models alone, ns/row | max abs diff | decisions changed | scores |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        if row["seconds"] is None:
            lines.append(f"| {row['backend']} | unavailable: {row['unavailable']} | | | | | |")
            continue
        link = f"[{prefix}{row['file']}]({prefix}{row['file']})"
        models = "" if row.get("models_ns_per_row") is None else f"{row['models_ns_per_row']:,.0f}"
        lines.append(
            f"| {row['backend']} | {row['seconds']:.2f} | {row['rows_per_second']:,.0f} | {models} | "
            f"{row['max_abs_diff']:.2e} | {row['decisions_changed']:,} | {link} |"
        )
    return lines
