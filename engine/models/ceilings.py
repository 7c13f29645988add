"""Bayes ceilings: the best score any model can reach on kaggle-mode data, given how its labels were made.

In the Kaggle dataset (and in kaggle-mode data, which reproduces it; see :mod:`engine.data.synthetic`) every label
depends on the inputs only through three facts about a row: ``temperature > 90``, ``vibration > 80`` and
``machine_status``. Everything else in a label is noise independent of the inputs: remaining life is drawn
uniformly within a range, failure type is drawn at random under maintenance, and maintenance is also required
when that random remaining life is below 20 hours. So rows with the same three facts are exchangeable, and the
best possible predictor is a function of the group a row falls in. This module measures, on labelled data,
the label distribution within each of the 12 groups and computes the best score of any such function:

- binary F1: rank groups by their positive rate and take the best prefix (for F1, a ratio of linear counts,
  assigning part of a group never beats all or none of it); precision, recall and accuracy of that predictor;
  ROC-AUC with the group rate as the score;
- failure type: accuracy of the majority class per group; macro and weighted F1 of the best *fractional*
  assignment of each group's rows to classes (a model can split exchangeable rows using inputs that carry no
  signal, and for a sum of F1 ratios splitting can pay), found numerically from several starting points;
- remaining life: R^2 and RMSE of the group means, MAE of the group medians.

A model scoring above its ceiling by more than sampling noise has seen the label (leakage). The reference
project's published figures (:data:`REFERENCE_FIGURES`) are shown beside the ceilings for that reason.

Examples
--------
>>> from engine.data.synthetic import generate
>>> from engine.models.tasks import inputs_and_targets
>>> X, y = inputs_and_targets(generate(20_000, seed=3))
>>> ceilings = task_ceilings(X, y)
>>> ceilings["anomaly_flag"]["f1"], ceilings["downtime_risk"]["f1"]
(1.0, 1.0)
>>> 0.93 < ceilings["maintenance_required"]["f1"] < 0.98, 0.15 < ceilings["predicted_remaining_life"]["r2"] < 0.25
(True, True)
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from sklearn.metrics import roc_auc_score

from engine.errors import InvalidInputError
from engine.models.tasks import STATUS_COLUMN, TASK_BY_NAME

__all__ = ["REFERENCE_FIGURES", "ceiling", "group_of_rows", "task_ceilings"]

# Figures published by the reference project (49 model configurations on this dataset): task -> (metric, value).
# Failure type "F1 0.93" matches the weighted F1 of always predicting the likeliest class, so it is read as
# weighted F1.
REFERENCE_FIGURES: dict[str, tuple[str, float]] = {
    "anomaly_flag": ("f1", 0.9998),
    "maintenance_required": ("f1", 0.9821),
    "downtime_risk": ("f1", 0.9998),
    "failure_type": ("f1_weighted", 0.93),
    "predicted_remaining_life": ("r2", 0.18),
}

TEMPERATURE_LIMIT = 90.0  # anomaly when temperature > 90 (engine.data.synthetic, measured on the real sample)
VIBRATION_LIMIT = 80.0  # ... or vibration > 80
N_GROUPS = 12  # 2 x 2 x 3


def group_of_rows(X: np.ndarray) -> np.ndarray:
    """The group (0..11) of every row: ``4 * status + 2 * (temperature > 90) + (vibration > 80)``.

    ``X`` holds the model inputs of :func:`engine.models.tasks.design_matrix`: column 0 is temperature, 1 vibration.
    """
    hot = X[:, 0] > TEMPERATURE_LIMIT
    shaking = X[:, 1] > VIBRATION_LIMIT
    return (4 * X[:, STATUS_COLUMN].astype(np.int64) + 2 * hot + shaking).astype(np.int64)


def task_ceilings(X: np.ndarray, targets: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """:func:`ceiling` of every task in ``targets``."""
    groups = group_of_rows(X)
    return {name: ceiling(TASK_BY_NAME[name].kind, groups, y) for name, y in targets.items()}


def ceiling(kind: str, groups: np.ndarray, y: np.ndarray, n_classes: int = 5) -> dict[str, float]:
    """The best scores of any predictor that is a function of ``groups`` (see the module docstring)."""
    if kind == "binary":
        return _binary_ceiling(groups, y)
    if kind == "multiclass":
        return _multiclass_ceiling(groups, y, n_classes)
    if kind == "regression":
        return _regression_ceiling(groups, y)
    raise InvalidInputError(f"kind must be binary, multiclass or regression, not {kind!r}")


def _binary_ceiling(groups, y) -> dict[str, float]:
    rows = np.bincount(groups, minlength=N_GROUPS).astype(np.float64)
    positives = np.bincount(groups, weights=y, minlength=N_GROUPS)
    present = np.flatnonzero(rows > 0)
    rate = positives[present] / rows[present]
    order = present[np.argsort(-rate, kind="stable")]
    total_positive = positives.sum()
    best = {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    predicted = true_positive = 0.0
    for g in order:
        predicted += rows[g]
        true_positive += positives[g]
        f1 = 2 * true_positive / (predicted + total_positive) if total_positive else 0.0
        if f1 > best["f1"]:
            best = {"f1": f1, "precision": true_positive / predicted, "recall": true_positive / total_positive}
    majority = np.maximum(positives, rows - positives).sum()
    posterior = np.divide(positives, rows, out=np.zeros(N_GROUPS), where=rows > 0)[groups]
    auc = float(roc_auc_score(y, posterior)) if 0 < total_positive < len(y) else float("nan")
    return {**{k: float(v) for k, v in best.items()}, "accuracy": float(majority / len(y)), "roc_auc": auc}


def _multiclass_ceiling(groups, y, n_classes) -> dict[str, float]:
    counts = np.zeros((N_GROUPS, n_classes))
    np.add.at(counts, (groups, y), 1.0)
    counts = counts[counts.sum(axis=1) > 0]
    support = counts.sum(axis=0)

    def f1_per_class(assign):
        true_positive = (assign * counts).sum(axis=0)
        predicted = (assign * counts.sum(axis=1, keepdims=True)).sum(axis=0)
        denominator = predicted + support
        return np.divide(2 * true_positive, denominator, out=np.zeros(n_classes), where=denominator > 0)

    weights = {"f1_macro": np.full(n_classes, 1.0 / n_classes), "f1_weighted": support / support.sum()}
    majority = np.eye(n_classes)[counts.argmax(axis=1)]
    result = {"accuracy": float(counts.max(axis=1).sum() / counts.sum())}
    rng = np.random.default_rng(0)
    g = counts.shape[0]
    for metric, w in weights.items():
        starts = [majority, np.full((g, n_classes), 1.0 / n_classes), counts / counts.sum(axis=1, keepdims=True)]
        starts += [rng.dirichlet(np.ones(n_classes), size=g) for _ in range(5)]
        best = float(w @ f1_per_class(majority))
        for start in starts:
            solution = minimize(
                lambda flat, w=w: -float(w @ f1_per_class(flat.reshape(g, n_classes))),
                start.ravel(),
                method="SLSQP",
                bounds=[(0.0, 1.0)] * start.size,
                constraints=[{"type": "eq", "fun": lambda flat: flat.reshape(g, n_classes).sum(axis=1) - 1.0}],
                options={"maxiter": 500, "ftol": 1e-12},
            )
            assign = np.clip(solution.x.reshape(g, n_classes), 0.0, None)
            assign /= assign.sum(axis=1, keepdims=True)
            best = max(best, float(w @ f1_per_class(assign)))
        result[metric] = best
    return result


def _regression_ceiling(groups, y) -> dict[str, float]:
    rows = np.bincount(groups, minlength=N_GROUPS)
    means = np.bincount(groups, weights=y, minlength=N_GROUPS) / np.maximum(rows, 1)
    medians = np.zeros(N_GROUPS)
    for g in np.flatnonzero(rows):
        medians[g] = np.median(y[groups == g])
    residual = y - means[groups]
    return {
        "r2": float(1.0 - (residual @ residual) / ((y - y.mean()) @ (y - y.mean()))),
        "rmse": float(np.sqrt(np.mean(residual**2))),
        "mae": float(np.mean(np.abs(y - medians[groups]))),
    }
