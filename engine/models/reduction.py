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
>>> from engine.data.synthetic import generate
>>> from engine.models.tasks import TASK_BY_NAME, inputs_and_targets
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

from engine.models.cross_validation import fit_model, fold_metrics, parallel_map, predict_scores, splits
from engine.models.tasks import INPUT_COLUMNS, STATUS_COLUMN, Task
from engine.models.zoo import lightgbm_candidate
from kernels.names import FEATURE_NAMES

__all__ = [
    "COMPACT_TOLERANCE",
    "TOP_K",
    "ReductionPoint",
    "columns_fold_score",
    "cv_columns",
    "pick_compact",
    "reduction_curve",
    "reduction_fold",
    "reduction_points",
]

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


def cv_columns(task: Task, X, y, columns, *, folds=3, seed=0, n_jobs=2, workers=1) -> tuple[float, float]:
    """Mean and std over folds of the task's score for LightGBM on the given input columns."""
    scores = parallel_map(
        lambda fold: columns_fold_score(task, X, y, columns, fold, seed=seed, n_jobs=n_jobs),
        splits(task, y, folds, seed),
        workers,
    )
    return float(np.mean(scores)), float(np.std(scores))


def columns_fold_score(task: Task, X, y, columns, fold, *, seed=0, n_jobs=2) -> float:
    """One fold of :func:`cv_columns`: ``fold`` is (train rows, test rows)."""
    train, test = fold
    columns = np.asarray(columns, dtype=np.int64)
    model = _fit_lightgbm(task, X[train], y[train], columns, seed, n_jobs)
    return fold_metrics(task, y[test], predict_scores(task, model, X[test][:, columns]))[task.score]


def reduction_curve(task: Task, X, y, *, top_k=TOP_K, folds=3, seed=0, n_jobs=2, workers=1) -> list[ReductionPoint]:
    """CV scores of LightGBM on the top-k features by gain (ranked within each fold) and on two raw sensors.

    ``workers`` folds run side by side (each fit on ``n_jobs`` threads)."""
    per_fold = parallel_map(
        lambda fold: reduction_fold(task, X, y, fold, top_k=top_k, seed=seed, n_jobs=n_jobs),
        splits(task, y, folds, seed),
        workers,
    )
    return reduction_points(per_fold, top_k)


def reduction_fold(task: Task, X, y, fold, *, top_k=TOP_K, seed=0, n_jobs=2) -> tuple:
    """One fold of :func:`reduction_curve`: the all-features model's gain, the top-k scores, the two-sensor score."""
    train, test = fold
    n_features = len(FEATURE_NAMES)
    all_columns = np.arange(len(INPUT_COLUMNS))
    full = fit_model(lightgbm_candidate(task.kind, all_columns, seed=seed, n_jobs=n_jobs), X[train], y[train])
    gain = full.booster_.feature_importance(importance_type="gain")[:n_features]
    ranking = np.argsort(-gain, kind="stable")
    scores = {}
    for k in top_k:
        columns = all_columns if k >= n_features else _with_status(np.sort(ranking[:k]))
        model = full if k >= n_features else _fit_lightgbm(task, X[train], y[train], columns, seed, n_jobs)
        scores[k] = fold_metrics(task, y[test], predict_scores(task, model, X[test][:, columns]))[task.score]
    two_sensors = columns_fold_score(task, X, y, _with_status(TWO_SENSORS), fold, seed=seed, n_jobs=n_jobs)
    return gain, scores, two_sensors


def reduction_points(per_fold: list[tuple], top_k=TOP_K) -> list[ReductionPoint]:
    """The curve from the folds' :func:`reduction_fold` results (in fold order)."""
    n_features = len(FEATURE_NAMES)
    all_columns = np.arange(len(INPUT_COLUMNS))
    total_gain = np.zeros(n_features)
    for gain, _, _ in per_fold:
        total_gain += gain
    scores = {k: [fold[k] for _, fold, _ in per_fold] for k in top_k}
    two_sensor_scores = [two for _, _, two in per_fold]
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
            tuple(int(c) for c in _with_status(TWO_SENSORS)),
        )
    )
    return points


def pick_compact(points: list[ReductionPoint], tolerance: float = COMPACT_TOLERANCE) -> ReductionPoint:
    """The point with the fewest features whose score is within ``tolerance`` of the all-features score."""
    full = max(points, key=lambda point: point.k)
    good = [point for point in points if point.score_mean >= full.score_mean - tolerance]
    return min(good, key=lambda point: (point.k, -point.score_mean))
