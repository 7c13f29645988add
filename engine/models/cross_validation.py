"""K-fold cross-validation of the model zoo, the choice of a model per task, and its decision threshold.

- Folds: stratified K-fold for the classification tasks, plain K-fold for remaining life, shuffled with a seed.
  Every fitted step (imputer, scaler, model) sees the training folds only.
- Metrics per fold (scikit-learn's): accuracy, precision, recall, F1 and ROC-AUC for binary tasks (at the
  threshold 0.5); accuracy, macro precision/recall/F1, weighted F1 and one-vs-rest ROC-AUC for failure type;
  MAE, RMSE and R^2 for remaining life. Reported as mean and std over folds, with the fit time.
- The best model of a task has the highest mean score (F1, macro F1 or R^2); scores equal to 4 decimals are
  ties, broken by precision, then by fit time.
- The threshold of a binary task maximizes F1 over the chosen model's out-of-fold probabilities: each
  probability comes from a model that never saw that row, so the threshold is not fitted to training data.

Examples
--------
>>> from engine.data.synthetic import generate
>>> from engine.models.tasks import TASK_BY_NAME, inputs_and_targets
>>> X, y = inputs_and_targets(generate(3_000, seed=1))
>>> results = cross_validate(TASK_BY_NAME["anomaly_flag"], X, y["anomaly_flag"], families=["lightgbm"])
>>> result = results["lightgbm"]
>>> len(result.folds), result.oof.shape, 0.9 < result.mean("f1") <= 1.0
(3, (3000,), True)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    precision_recall_curve,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.model_selection import KFold, StratifiedKFold

from engine.errors import InvalidInputError
from engine.models.tasks import Task
from engine.models.zoo import Candidate, candidates

__all__ = [
    "METRICS",
    "ModelResult",
    "choose_best",
    "choose_threshold",
    "cross_validate",
    "cross_validate_candidates",
    "fit_model",
    "fold_metrics",
    "parallel_map",
    "predict_scores",
    "splits",
]

METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "precision", "recall", "f1", "roc_auc"),
    "multiclass": ("accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted", "roc_auc_ovr"),
    "regression": ("mae", "rmse", "r2"),
}
TIE_DECIMALS = 4


@dataclass
class ModelResult:
    """Cross-validation of one model family on one task.

    Attributes
    ----------
    folds : list of dict
        Metrics of each held-out fold (:data:`METRICS` of the task's kind).
    fit_seconds : list of float
        Fit time per fold.
    oof : ndarray
        Out-of-fold predictions for every row: positive-class probability (binary), class probabilities
        (multiclass, shape (n, k)) or values (regression).
    """

    task: str
    family: str
    folds: list[dict[str, float]] = field(default_factory=list)
    fit_seconds: list[float] = field(default_factory=list)
    oof: np.ndarray | None = None

    def mean(self, metric: str) -> float:
        return float(np.mean([fold[metric] for fold in self.folds]))

    def std(self, metric: str) -> float:
        return float(np.std([fold[metric] for fold in self.folds]))

    @property
    def mean_fit_seconds(self) -> float:
        return float(np.mean(self.fit_seconds))


def splits(task: Task, y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test row indices of each fold (stratified for classification)."""
    if task.kind == "regression":
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros((len(y), 1)), y))


def fit_model(candidate: Candidate, X: np.ndarray, y: np.ndarray):
    """A fitted clone of the candidate's estimator."""
    estimator = clone(candidate.estimator)
    estimator.fit(X, y, **candidate.fit_params)
    return estimator


def predict_scores(task: Task, estimator, X: np.ndarray) -> np.ndarray:
    """Predictions in :class:`ModelResult`'s convention, whatever classes the estimator saw when fitted."""
    if task.kind == "regression":
        return np.asarray(estimator.predict(X), dtype=np.float64)
    seen = np.asarray(estimator.classes_, dtype=np.int64)
    full = np.zeros((X.shape[0], len(task.classes)))
    if seen.size == 1:
        full[:, seen[0]] = 1.0  # a training set with one class: that class, surely (LightGBM's proba is not)
    else:
        full[:, seen] = estimator.predict_proba(X)
    return full[:, 1] if task.kind == "binary" else full


def fold_metrics(task: Task, y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """The task's metrics (:data:`METRICS`) of predictions in :class:`ModelResult`'s convention."""
    if task.kind == "regression":
        return {
            "mae": float(mean_absolute_error(y_true, scores)),
            "rmse": float(root_mean_squared_error(y_true, scores)),
            "r2": float(r2_score(y_true, scores)),
        }
    if task.kind == "binary":
        predicted = (scores >= threshold).astype(np.int64)
        both = np.unique(y_true).size == 2
        return {
            "accuracy": float(accuracy_score(y_true, predicted)),
            "precision": float(precision_score(y_true, predicted, zero_division=0)),
            "recall": float(recall_score(y_true, predicted, zero_division=0)),
            "f1": float(f1_score(y_true, predicted, zero_division=0)),
            "roc_auc": float(roc_auc_score(y_true, scores)) if both else float("nan"),
        }
    labels = np.arange(len(task.classes))
    predicted = scores.argmax(axis=1)
    all_present = np.unique(y_true).size == len(labels)
    return {
        "accuracy": float(accuracy_score(y_true, predicted)),
        "precision_macro": float(precision_score(y_true, predicted, labels=labels, average="macro", zero_division=0)),
        "recall_macro": float(recall_score(y_true, predicted, labels=labels, average="macro", zero_division=0)),
        "f1_macro": float(f1_score(y_true, predicted, labels=labels, average="macro", zero_division=0)),
        "f1_weighted": float(f1_score(y_true, predicted, labels=labels, average="weighted", zero_division=0)),
        "roc_auc_ovr": float(roc_auc_score(y_true, scores, multi_class="ovr", labels=labels))
        if all_present
        else float("nan"),
    }


def cross_validate(
    task: Task,
    X: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = 3,
    seed: int = 0,
    families: Iterable[str] | None = None,
    n_jobs: int = 2,
    workers: int = 1,
    on_fit: Callable[[str, int], None] | None = None,
) -> dict[str, ModelResult]:
    """K-fold CV of the zoo's candidates for ``task``.

    Parameters
    ----------
    task : Task
    X : ndarray of shape (n, 68)
        Inputs from :func:`engine.models.tasks.design_matrix`.
    y : ndarray of shape (n,)
        The task's target.
    folds : int, default=3
    seed : int, default=0
        Seed of the fold shuffle and of every model.
    families : iterable of str, optional
        Zoo families to evaluate (default: all of the task's kind).
    n_jobs : int, default=2
        Threads of each fit.
    workers : int, default=1
        Fits run side by side (folds and families); with several, give each fit ``n_jobs=1``.
    on_fit : callable, optional
        Called with (family, fold) after each fit, for progress display.

    Returns
    -------
    dict of family -> ModelResult
    """
    zoo = candidates(task.kind, seed=seed, n_jobs=n_jobs)
    names = list(zoo) if families is None else list(families)
    unknown = [name for name in names if name not in zoo]
    if unknown:
        raise InvalidInputError(f"unknown model families for {task.kind} tasks: {', '.join(unknown)}")
    return cross_validate_candidates(
        task, {name: zoo[name] for name in names}, X, y, folds=folds, seed=seed, workers=workers, on_fit=on_fit
    )


def cross_validate_candidates(
    task: Task,
    named: dict[str, Candidate],
    X: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = 3,
    seed: int = 0,
    workers: int = 1,
    on_fit: Callable[[str, int], None] | None = None,
) -> dict[str, ModelResult]:
    """K-fold CV of the given candidates, by name, on the folds :func:`cross_validate` uses for the same
    ``folds`` and ``seed`` (so their scores compare with the zoo's)."""
    fold_indices = splits(task, y, folds, seed)

    def fit_fold(job: tuple[str, int]):
        name, k = job
        train, test = fold_indices[k]
        started = time.perf_counter()
        estimator = fit_model(named[name], X[train], y[train])
        seconds = time.perf_counter() - started
        scores = predict_scores(task, estimator, X[test])
        if on_fit is not None:
            on_fit(name, k)
        return seconds, scores, fold_metrics(task, y[test], scores)

    jobs = [(name, k) for name in named for k in range(len(fold_indices))]
    done = dict(zip(jobs, parallel_map(fit_fold, jobs, workers), strict=True))
    results = {}
    for name in named:
        result = ModelResult(task.name, name)
        oof = np.zeros((len(y), len(task.classes))) if task.kind == "multiclass" else np.zeros(len(y))
        for k, (_, test) in enumerate(fold_indices):
            seconds, scores, metrics = done[name, k]
            result.fit_seconds.append(seconds)
            oof[test] = scores
            result.folds.append(metrics)
        result.oof = oof
        results[name] = result
    return results


def parallel_map(function: Callable, items: list, workers: int) -> list:
    """``[function(item) for item in items]`` on ``workers`` threads (in order). The fits release the GIL, so
    folds and models of a CV run side by side; each fit should then use one thread (``n_jobs=1``)."""
    if workers <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items))


def _rank_key(task: Task, result: ModelResult) -> tuple:
    secondary = {"binary": "precision", "multiclass": "precision_macro", "regression": None}[task.kind]
    key = [round(result.mean(task.score), TIE_DECIMALS)]
    if secondary is not None:
        key.append(round(result.mean(secondary), TIE_DECIMALS))
    key.append(-result.mean_fit_seconds)
    return tuple(key)


def choose_best(task: Task, results: dict[str, ModelResult], allowed: Iterable[str] | None = None) -> str:
    """The family with the best mean score; ties (to 4 decimals) go to higher precision, then faster fits."""
    pool = [name for name in results if allowed is None or name in set(allowed)]
    if not pool:
        raise InvalidInputError(f"no candidate results for {task.name}")
    return max(pool, key=lambda name: _rank_key(task, results[name]))


def choose_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The probability threshold (predict positive when ``score >= threshold``) that maximizes F1 on these scores.

    Meant for out-of-fold scores. Among thresholds with the same F1 the highest is taken (fewest alarms).

    Examples
    --------
    >>> choose_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.7, 0.9]))
    0.7
    """
    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)[:-1]
    best = np.flatnonzero(f1 == f1.max())
    return float(thresholds[best[-1]])
