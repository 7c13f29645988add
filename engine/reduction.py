"""Feature reduction: how few features each task needs, and what the rolling and per-machine features add.

:func:`reduction_curve` runs K-fold CV of LightGBM on the top-k features for k in :data:`TOP_K`. The ranking
is LightGBM's total gain from the all-features model fitted on the *training folds* of each fold, so the rows
a subset is scored on never took part in choosing it. Every subset also keeps ``machine_status`` as context.
A last point uses only two raw sensors, temperature and vibration.

:func:`pick_compact` takes the smallest k whose score is within :data:`COMPACT_TOLERANCE` of all features.

:func:`cv_columns` is the same CV on any column subset; the training report uses it to compare raw sensors
with all features on fleet data.

Examples
--------
>>> from engine.synth import generate
>>> from engine.tasks import TASK_BY_NAME, inputs_and_targets
>>> X, y = inputs_and_targets(generate(3_000, seed=4))
>>> curve = reduction_curve(TASK_BY_NAME["anomaly_flag"], X, y["anomaly_flag"], top_k=(67, 2))
>>> [point.label for point in curve]
['all 67', 'top 2', 'temperature + vibration']
>>> pick_compact(curve).label in {'all 67', 'top 2', 'temperature + vibration'}
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.tasks import INPUT_COLUMNS, STATUS_COLUMN, Task
from engine.training import fit_model, fold_metrics, predict_scores, splits
from engine.zoo import lightgbm_candidate
from kernels.names import FEATURE_NAMES

__all__ = ["COMPACT_TOLERANCE", "TOP_K", "ReductionPoint", "cv_columns", "pick_compact", "reduction_curve"]

TOP_K = (67, 20, 10, 5, 2)
COMPACT_TOLERANCE = 0.005
TWO_SENSORS = (FEATURE_NAMES.index("temperature"), FEATURE_NAMES.index("vibration"))


@dataclass(frozen=True)
class ReductionPoint:
    """CV score of LightGBM on a feature subset (``k`` features plus machine_status)."""

    label: str
    k: int
    score_mean: float
    score_std: float
    columns: tuple[int, ...]  # input columns of the subset chosen on all rows (for the shipped compact model)


def _fit_lightgbm(task: Task, X, y, columns, seed: int, n_jobs: int):
    return fit_model(lightgbm_candidate(task.kind, columns, seed=seed, n_jobs=n_jobs), X[:, columns], y)


def _with_status(features: np.ndarray) -> np.ndarray:
    return np.append(np.asarray(features, dtype=np.int64), STATUS_COLUMN)


def cv_columns(task: Task, X, y, columns, *, folds=3, seed=0, n_jobs=2) -> tuple[float, float]:
    """Mean and std over folds of the task's score for LightGBM on the given input columns."""
    columns = np.asarray(columns, dtype=np.int64)
    scores = []
    for train, test in splits(task, y, folds, seed):
        model = _fit_lightgbm(task, X[train], y[train], columns, seed, n_jobs)
        predicted = predict_scores(task, model, X[test][:, columns])
        scores.append(fold_metrics(task, y[test], predicted)[task.score])
    return float(np.mean(scores)), float(np.std(scores))


def reduction_curve(task: Task, X, y, *, top_k=TOP_K, folds=3, seed=0, n_jobs=2) -> list[ReductionPoint]:
    """CV scores of LightGBM on the top-k features by gain (ranked within each fold) and on two raw sensors."""
    n_features = len(FEATURE_NAMES)
    all_columns = np.arange(len(INPUT_COLUMNS))
    scores: dict[int, list[float]] = {k: [] for k in top_k}
    two_sensor_scores = []
    total_gain = np.zeros(n_features)
    two_sensor_columns = _with_status(TWO_SENSORS)
    for train, test in splits(task, y, folds, seed):
        full = fit_model(lightgbm_candidate(task.kind, all_columns, seed=seed, n_jobs=n_jobs), X[train], y[train])
        gain = full.booster_.feature_importance(importance_type="gain")[:n_features]
        total_gain += gain
        ranking = np.argsort(-gain, kind="stable")
        for k in top_k:
            columns = all_columns if k >= n_features else _with_status(np.sort(ranking[:k]))
            model = full if k >= n_features else _fit_lightgbm(task, X[train], y[train], columns, seed, n_jobs)
            predicted = predict_scores(task, model, X[test][:, columns])
            scores[k].append(fold_metrics(task, y[test], predicted)[task.score])
        model = _fit_lightgbm(task, X[train], y[train], two_sensor_columns, seed, n_jobs)
        predicted = predict_scores(task, model, X[test][:, two_sensor_columns])
        two_sensor_scores.append(fold_metrics(task, y[test], predicted)[task.score])
    overall = np.argsort(-total_gain, kind="stable")
    points = [
        ReductionPoint(
            label=f"all {n_features}" if k >= n_features else f"top {k}",
            k=min(k, n_features),
            score_mean=float(np.mean(scores[k])),
            score_std=float(np.std(scores[k])),
            columns=tuple(int(c) for c in (all_columns if k >= n_features else _with_status(np.sort(overall[:k])))),
        )
        for k in top_k
    ]
    points.append(
        ReductionPoint(
            "temperature + vibration",
            2,
            float(np.mean(two_sensor_scores)),
            float(np.std(two_sensor_scores)),
            tuple(int(c) for c in two_sensor_columns),
        )
    )
    return points


def pick_compact(points: list[ReductionPoint], tolerance: float = COMPACT_TOLERANCE) -> ReductionPoint:
    """The point with the fewest features whose score is within ``tolerance`` of the all-features score."""
    full = max(points, key=lambda point: point.k)
    good = [point for point in points if point.score_mean >= full.score_mean - tolerance]
    return min(good, key=lambda point: (point.k, -point.score_mean))
