"""ONNX exports of a bundle's models, and how far they drift from the models' own libraries.

For every LightGBM model of a bundle (the ``lightgbm`` set, and chosen models that are LightGBM)::

    onnx/<set>/<task>.fp32.onnx     onnxmltools' TreeEnsemble export
    onnx/<set>/<task>.int8.onnx     the GEMM form (compile/onnx_gemm.py) quantized to int8 by onnxruntime

and for every chosen scikit-learn model, ``onnx/chosen/<task>.fp32.onnx``: skl2onnx's export, written with the
bundle (compile/sklearn_onnx.py; the bundle keeps no estimator to export later). There is no int8 form of those:
the GEMM form of a depth-14 forest is larger than memory.

All are listed with their sha256 in ``bundle.json``; the ``onnx`` section records their sizes (and the size of
the GEMM form before quantization). :func:`onnx_models` opens them after checking their hashes; :func:`onnx_drift`
measures their predictions, decisions and scores against the models' own on data they were not trained on.
"""

from __future__ import annotations

from collections.abc import Callable

import lightgbm as lgb
import numpy as np

from compile.errors import CompileError
from compile.onnx_export import OnnxModel, lightgbm_onnx
from compile.onnx_gemm import gemm_model, quantize_int8
from engine.bundle.build_step import Built, run_build_step
from engine.bundle.format import Bundle
from engine.errors import InvalidInputError
from engine.models.autoencoder import SCORE_NAME
from engine.models.cross_validation import fold_metrics
from engine.models.tasks import TASK_BY_NAME

__all__ = ["ONNX_PRECISIONS", "export_onnx", "onnx_drift", "onnx_models", "unsupervised_drift"]

ONNX_PRECISIONS = ("fp32", "int8")


def export_onnx(path, *, progress: Callable[[str], None] = print) -> Bundle:
    """Write the fp32 and int8 ONNX models of every LightGBM model in the bundle at ``path`` (the chosen
    scikit-learn models' fp32 exports were made with the bundle); returns it reloaded."""
    return run_build_step(path, "onnx", _onnx_exports, progress)


def _onnx_exports(bundle: Bundle, set_name: str, task: str, entry: dict) -> Built | str:
    if entry["family"] != "lightgbm":
        sklearn = bundle.sklearn_onnx.get(task, {}) if set_name == "chosen" else {}
        if "fp32" not in sklearn:
            return f"{entry['family']} has no ONNX export ({sklearn.get('unavailable', 'the bundle has none')})"
        # skl2onnx's export, made when the bundle was written: its file is in the bundle already
        return Built({**sklearn, "int8": None, "exporter": "skl2onnx"}, f"{entry['family']}, skl2onnx fp32 "
                     f"{sklearn['fp32_bytes']:,} bytes")  # fmt: skip
    booster = lgb.Booster(model_str=bundle.verified_bytes(entry["file"]).decode())
    fp32 = lightgbm_onnx(booster).SerializeToString()
    gemm = gemm_model(booster)
    int8 = quantize_int8(gemm)
    prefix = f"onnx/{set_name}/{task}"
    entry = {
        "fp32": f"{prefix}.fp32.onnx",
        "int8": f"{prefix}.int8.onnx",
        "fp32_bytes": len(fp32),
        "int8_bytes": len(int8),
        "gemm_fp32_bytes": gemm.ByteSize(),
        "trees": booster.num_trees(),
        "exporter": "onnxmltools",
    }
    summary = f"{booster.num_trees()} trees, fp32 {len(fp32):,} bytes, int8 {len(int8):,} bytes"
    summary += f" (GEMM fp32 {gemm.ByteSize():,})"
    return Built(entry, summary, {entry["fp32"]: fp32, entry["int8"]: int8})


def onnx_models(bundle: Bundle, set_name: str = "chosen", precision: str = "fp32") -> dict[str, OnnxModel]:
    """The ONNX model of each exported task of a set, loaded from hash-checked bytes."""
    if precision not in ONNX_PRECISIONS:
        raise InvalidInputError(f"precision must be one of {ONNX_PRECISIONS}, not {precision!r}")
    section = bundle.onnx_sets
    if not section:
        raise CompileError(f"{bundle.path}: no ONNX models; run `iotengine compile --bundle {bundle.path}`")
    kinds = bundle.set_entries(set_name) if set_name in section else {}
    return {
        task: OnnxModel(bundle.verified_bytes(entry[precision]), kinds[task]["kind"], name=entry[precision])
        for task, entry in section.get(set_name, {}).items()
        if entry.get(precision)
    }


def onnx_drift(bundle: Bundle, X: np.ndarray, targets: dict[str, np.ndarray], set_name: str = "lightgbm") -> list:
    """Per task with an ONNX export: how far fp32 (and int8, where there is one) drift from the model's own library.

    ``X`` are model inputs (n, 68) and ``targets`` the labels, neither seen in training. Each row holds the max and
    mean |difference| of the scores, the decisions changed (binary tasks at the bundle's threshold, the most
    probable class of failure type; none for remaining life) and the task's score
    (:attr:`engine.models.tasks.Task.score`: F1 at the threshold, macro F1, R²)
    with the model's own library and with each export.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    onnx_sets = {precision: onnx_models(bundle, set_name, precision) for precision in ONNX_PRECISIONS}
    rows = []
    for task_name, entry in bundle.set_entries(set_name).items():
        if task_name not in onnx_sets["fp32"]:
            continue
        task = TASK_BY_NAME[task_name]
        columns = entry.get("columns")
        inputs = X if columns is None else X[:, columns]
        own = bundle.model(task_name) if set_name == "chosen" else bundle.load_set_model(set_name, task_name)
        reference = own.predict(inputs)
        threshold = entry.get("threshold") or 0.5
        y = np.asarray(targets[task_name])
        row = {"set": set_name, "task": task_name, "family": entry["family"], "rows": len(y), "score": task.score}
        row["own"] = fold_metrics(task, y, _class_scores(task, entry, reference), threshold)[task.score]
        for precision, models in onnx_sets.items():
            if task_name not in models:
                row.update({f"{precision}_max_abs_diff": None, f"{precision}_mean_abs_diff": None})
                row.update({f"{precision}_decisions_changed": None, precision: None})
                continue
            predicted = models[task_name].predict(inputs)
            row[f"{precision}_max_abs_diff"] = float(np.abs(predicted - reference).max())
            row[f"{precision}_mean_abs_diff"] = float(np.abs(predicted - reference).mean())
            row[f"{precision}_decisions_changed"] = _decisions_changed(task.kind, reference, predicted, threshold)
            row[precision] = fold_metrics(task, y, _class_scores(task, entry, predicted), threshold)[task.score]
        rows.append(row)
    return rows


def unsupervised_drift(bundle: Bundle, D: np.ndarray, anomaly: np.ndarray | None = None) -> list[dict]:
    """How far the unsupervised detector's score drifts in ONNX fp32 and int8 from LightGBM's, on detector inputs
    ``D`` (n, 78) not trained on: max and mean |score difference|, alarms changed at the bundle's threshold, and
    (with the ``anomaly`` labels) the PR-AUC of each."""
    from sklearn.metrics import average_precision_score

    threshold = bundle.unsupervised["threshold"]
    reference = bundle.unsupervised_outputs(D, "lightgbm")[SCORE_NAME]
    known = ~np.isnan(reference)

    def pr_auc(score):
        if anomaly is None or anomaly.min() == anomaly.max():
            return None
        return float(average_precision_score(anomaly[known], score[known]))

    rows = [{"runtime": "lightgbm", "max_abs_diff": 0.0, "mean_abs_diff": 0.0, "alarms_changed": 0,
             "pr_auc": pr_auc(reference)}]  # fmt: skip
    for precision in ONNX_PRECISIONS:
        score = bundle.unsupervised_outputs(D, "onnx" if precision == "fp32" else "onnx-int8")[SCORE_NAME]
        diff = np.abs(score[known] - reference[known])
        rows.append(
            {
                "runtime": f"onnx {precision}",
                "max_abs_diff": float(diff.max(initial=0.0)),
                "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
                "alarms_changed": int(np.sum((score[known] >= threshold) != (reference[known] >= threshold))),
                "pr_auc": pr_auc(score),
            }
        )
    return rows


def _decisions_changed(kind: str, reference: np.ndarray, predicted: np.ndarray, threshold: float) -> int | None:
    if kind == "binary":
        return int(np.sum((reference >= threshold) != (predicted >= threshold)))
    if kind == "multiclass":
        return int(np.sum(reference.argmax(axis=1) != predicted.argmax(axis=1)))
    return None


def _class_scores(task, entry: dict, scores: np.ndarray) -> np.ndarray:
    """Multiclass scores widened to all of the task's classes (a model may not have seen every class)."""
    if task.kind != "multiclass":
        return scores
    full = np.zeros((scores.shape[0], len(task.classes)))
    full[:, entry["class_indices"]] = scores
    return full
