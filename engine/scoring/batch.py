"""Batch scoring of a telemetry file (``iotengine score``), and the C library as a batch backend.

:func:`score_file` reads any telemetry file the loader reads, scores every row with a bundle and writes one row
per input row, in input order::

    machine_id, timestamp
    anomaly_flag, maintenance_required, downtime_risk          probability of the positive class
    anomaly_flag_decision, ...                                 probability >= the bundle's threshold
    failure_type                                               the most probable class's name
    failure_type_p_normal, failure_type_p_vibration_issue, ... its 5 probabilities (engine.data.schema.FAILURE_TYPES)
    predicted_remaining_life                                   hours
    unsupervised_anomaly, unsupervised_anomaly_decision        the unsupervised detector's score, score >= its
                                                               threshold (with a bundle that has the detector)
    residual_temperature, ...                                  its standardized residual per sensor

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
from engine.features.batch_driver import run_history
from engine.models.autoencoder import RESIDUAL_NAMES, SCORE_NAME

__all__ = ["OUTPUT_SUFFIXES", "predict_with_c", "score_file", "scores_table"]

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
    if SCORE_NAME in scores:
        columns[SCORE_NAME] = pa.array(scores[SCORE_NAME], pa.float64())
        with np.errstate(invalid="ignore"):
            decision = scores[SCORE_NAME] >= bundle.unsupervised["threshold"]
        columns[f"{SCORE_NAME}_decision"] = pa.array(decision, pa.bool_())
        for name in RESIDUAL_NAMES:
            columns[name] = pa.array(scores[name], pa.float64())
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
            history = run_history(table) if bundle.unsupervised else None
            parts = []
            for start in range(0, max(X.shape[0], 1), CHUNK_ROWS):  # an empty file: every column, no rows
                rows = slice(start, start + CHUNK_ROWS)
                part = bundle.predict_inputs(
                    X[rows], backend=backend, models=models, history=None if history is None else history[rows]
                )
                parts.append(part)
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
