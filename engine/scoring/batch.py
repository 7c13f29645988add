"""Batch scoring of a telemetry file (``iotengine score``), and the C library as a batch backend.

:func:`score_file` reads any telemetry file the loader reads, scores every row with a bundle and writes one row
per input row, in input order::

    machine_id, timestamp
    anomaly_flag, maintenance_required, downtime_risk          probability of the positive class
    anomaly_flag_decision, ...                                 probability >= the bundle's threshold
    failure_type                                               the most probable class's name
    failure_type_p_normal, failure_type_p_vibration_issue, ... its 5 probabilities (engine.data.schema.FAILURE_TYPES)
    predicted_remaining_life                                   hours

as Parquet (or CSV, by the output's suffix). The file appears only when it is complete: it is written under a
temporary name in the same folder and renamed.

:func:`predict_with_c` is ``Bundle.predict(..., backend="c")``: the bundle's edge library (the C feature kernel
and the models, ``iot_score_many``) over every machine's rows in time order, the order the batch features use
(by machine, then timestamp; equal timestamps in input order), so it computes the same features as the batch
path; scores come back in input order.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from tqdm import tqdm

from engine.data.loading import load_telemetry
from engine.data.schema import FAILURE_TYPES, SENSORS
from engine.errors import BundleError, InvalidInputError

__all__ = [
    "COMPARED_BACKENDS",
    "OUTPUT_SUFFIXES",
    "backend_comparison",
    "comparison_table",
    "predict_with_c",
    "score_file",
    "scores_table",
]

OUTPUT_SUFFIXES = (".parquet", ".pq", ".csv")
CHUNK_ROWS = 65_536
BINARY_TASKS = ("anomaly_flag", "maintenance_required", "downtime_risk")


def _column_name(failure_type: str) -> str:
    return "failure_type_p_" + re.sub(r"\W+", "_", failure_type.lower()).strip("_")


def predict_with_c(bundle, table, models: str = "chosen", *, on_chunk: Callable[[int], None] | None = None) -> dict:
    """Scores of every row through the bundle's edge library (see the module docstring)."""
    from engine.stream.scorer import StreamScorer

    edge = bundle.edge
    if edge is None:
        raise BundleError(f"{bundle.path}: no C library; run `iotengine compile --bundle {bundle.path}`")
    if models != edge.models:
        raise BundleError(
            f"{bundle.path}: its C library holds the {edge.models!r} models, not {models!r} "
            f"(export-c --models {models} builds one for those)"
        )
    table = load_telemetry(table)
    ids = table.column("machine_id").to_numpy()
    stamps = table.column("timestamp").cast(pa.int64()).to_numpy()
    sensors = np.column_stack([table.column(name).to_numpy(zero_copy_only=False) for name in SENSORS])
    statuses = table.column("machine_status").to_numpy()
    _, slots = np.unique(ids, return_inverse=True)
    order = np.lexsort((stamps, slots))  # stable: equal timestamps keep the input order, as the batch features
    scorer = StreamScorer(bundle, backend="c", capacity=max(1, int(slots.max(initial=0)) + 1))
    parts = []
    for start in range(0, max(len(order), 1), CHUNK_ROWS):  # an empty table still gives every (empty) column
        rows = order[start : start + CHUNK_ROWS]
        parts.append(scorer.score_batch(ids[rows], stamps[rows], sensors[rows], statuses[rows]))
        if scorer.last_late.size:  # sorted by time per machine: nothing can be late
            raise RuntimeError(f"row {int(rows[scorer.last_late[0]])} was late after sorting")
        if on_chunk is not None:
            on_chunk(len(rows))
    out = {}
    for key in parts[0]:
        values = np.concatenate([part[key] for part in parts])
        restored = np.empty_like(values)
        restored[order] = values
        out[key] = restored
    return out


def scores_table(bundle, table: pa.Table, scores: dict) -> pa.Table:
    """The output table of :func:`score_file` for ``scores`` of ``table``'s rows (see the module docstring)."""
    columns = {"machine_id": table.column("machine_id"), "timestamp": table.column("timestamp")}
    for task in BINARY_TASKS:
        if task in scores:
            columns[task] = pa.array(scores[task], pa.float64())
            threshold = bundle.thresholds.get(task, 0.5)
            columns[f"{task}_decision"] = pa.array(scores[task] >= threshold, pa.bool_())
    if "failure_type" in scores:
        columns["failure_type"] = pa.array(scores["failure_type"].astype(str), pa.string())
        for k, name in enumerate(FAILURE_TYPES):
            columns[_column_name(name)] = pa.array(scores["failure_type_proba"][:, k], pa.float64())
    if "predicted_remaining_life" in scores:
        columns["predicted_remaining_life"] = pa.array(scores["predicted_remaining_life"], pa.float64())
    return pa.table(columns)


def score_file(
    bundle,
    data,
    out: str | os.PathLike,
    *,
    backend: str = "lightgbm",
    models: str = "chosen",
    progress: bool | None = None,
) -> pa.Table:
    """Score every row of ``data`` with ``bundle`` and write the scores to ``out``; returns the scores table.

    ``progress`` shows a bar on stderr (default: when stderr is a terminal).
    """
    from engine.bundle.format import Bundle

    out = Path(out)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise InvalidInputError(f"{out}: unknown output format; use one of {', '.join(OUTPUT_SUFFIXES)}")
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    table = load_telemetry(data)
    bar = tqdm(
        total=table.num_rows,
        unit=" rows",
        unit_scale=True,
        file=sys.stderr,
        leave=False,
        disable=not (sys.stderr.isatty() if progress is None else progress),
    )
    try:
        if backend == "c":
            scores = predict_with_c(bundle, table, models, on_chunk=bar.update)
        else:
            X = bundle.inputs(table)
            parts = []
            for start in range(0, max(X.shape[0], 1), CHUNK_ROWS):  # an empty file: every column, no rows
                parts.append(bundle.predict_inputs(X[start : start + CHUNK_ROWS], backend=backend, models=models))
                bar.update(min(CHUNK_ROWS, X.shape[0] - start))
            scores = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    finally:
        bar.close()
    result = scores_table(bundle, table, scores)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if out.suffix.lower() == ".csv":
            pa_csv.write_csv(result, temporary)
        else:
            pq.write_table(result, temporary, compression="zstd")
        temporary.replace(out)
    finally:
        temporary.unlink(missing_ok=True)
    return result


COMPARED_BACKENDS = ("lightgbm", "native", "onnx", "c")


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
            diff = max(diff, float(np.max(np.abs(got - expected), initial=0.0)))
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
