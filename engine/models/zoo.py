"""The candidate models of each task kind, with the settings used to compare them.

LightGBM is the primary model; the scikit-learn models are the comparison. Sizes are chosen so that 3-fold CV
of all five tasks on 100k rows takes minutes on 2 cores: forests have 100 trees of depth at most 14 (random
forests on half-size bootstrap samples), the boosted models 100 rounds at learning rate 0.1.

The linear and naive Bayes models cannot read NaN (fleet data has missing sensors) or a categorical column, so
their pipelines impute medians, expand ``machine_status`` into three indicators and (for the linear models)
scale; every step is fitted on the training folds only.

Examples
--------
>>> sorted(candidates("binary"))
['extra_trees', 'gaussian_nb', 'hist_gradient_boosting', 'lightgbm', 'logistic_regression', 'random_forest']
>>> sorted(candidates("regression"))
['extra_trees', 'hist_gradient_boosting', 'lightgbm', 'mean', 'random_forest', 'ridge']
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from compile.native import TREE_FAMILIES
from engine.errors import InvalidInputError
from engine.models.tasks import STATUS_COLUMN

__all__ = [
    "LIGHTGBM_PARAMS",
    "TREE_FAMILIES",
    "Candidate",
    "StatusOneHot",
    "candidates",
    "expand_status",
    "lightgbm_candidate",
]

LIGHTGBM_PARAMS = {
    "n_estimators": 100,
    "learning_rate": 0.1,
    "num_leaves": 31,
    # 255 bins keep every threshold a uint8 bin code (the benchmark issue's compact C trees rely on it); the
    # price is that a rule's exact cut point (temperature > 90) can fall inside a bin.
    "max_bin": 255,
    "subsample_for_bin": 200_000,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}
# sqrt(68) = 8 candidate features per split for regression too: scikit-learn's regression default (all 68)
# makes a random forest 8x slower for no gain in CV on these data.
FOREST_PARAMS = {"n_estimators": 100, "max_depth": 14, "min_samples_leaf": 5, "max_features": "sqrt"}
HIST_GB_PARAMS = {"max_iter": 100, "learning_rate": 0.1}


@dataclass
class Candidate:
    """An unfitted model and the keyword arguments its ``fit`` needs."""

    estimator: BaseEstimator
    fit_params: dict = field(default_factory=dict)


class StatusOneHot(TransformerMixin, BaseEstimator):
    """Replace the ``machine_status`` column (0, 1, 2) by three 0/1 indicator columns appended at the end.

    Stateless: the categories are the three statuses of the schema, not learnt from data.

    Examples
    --------
    >>> X = np.zeros((2, 68)); X[:, 67] = [2, 0]
    >>> StatusOneHot().fit_transform(X)[:, -3:].tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return expand_status(X)


def expand_status(X, column: int = STATUS_COLUMN) -> np.ndarray:
    """``X`` with its status column replaced by three 0/1 indicators appended at the end (float64)."""
    X = np.asarray(X, dtype=np.float64)
    indicators = (X[:, column][:, None] == np.arange(3)[None, :]).astype(np.float64)
    return np.hstack([np.delete(X, column, axis=1), indicators])


def lightgbm_candidate(kind: str, columns=None, *, seed: int = 0, n_jobs: int = 2) -> Candidate:
    """The zoo's LightGBM for a task kind, on all inputs or on a subset ``columns`` (status stays categorical)."""
    params = {**LIGHTGBM_PARAMS, "random_state": seed, "n_jobs": n_jobs}
    estimator = lgb.LGBMRegressor(**params) if kind == "regression" else lgb.LGBMClassifier(**params)
    columns = np.arange(STATUS_COLUMN + 1) if columns is None else np.asarray(columns)
    status_at = np.flatnonzero(columns == STATUS_COLUMN)
    return Candidate(estimator, {"categorical_feature": [int(status_at[0])]} if status_at.size else {})


def _tabular(model, scale: bool) -> Pipeline:
    steps = [("status", StatusOneHot()), ("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
    if scale:
        steps.append(("scale", StandardScaler()))
    steps.append(("model", model))
    return Pipeline(steps)


# The scikit-learn tree families exist as a classifier and a regressor with the same settings.
_TREE_CLASSES = {
    "random_forest": (RandomForestClassifier, RandomForestRegressor),
    "extra_trees": (ExtraTreesClassifier, ExtraTreesRegressor),
    "hist_gradient_boosting": (HistGradientBoostingClassifier, HistGradientBoostingRegressor),
}


def candidates(kind: str, *, seed: int = 0, n_jobs: int = 2) -> dict[str, Candidate]:
    """Fresh, unfitted candidates for a task kind ("binary", "multiclass" or "regression"), by family name."""
    if kind not in ("binary", "multiclass", "regression"):
        raise InvalidInputError(f"kind must be binary, multiclass or regression, not {kind!r}")
    which = 1 if kind == "regression" else 0
    params = {
        "random_forest": {**FOREST_PARAMS, "max_samples": 0.5, "n_jobs": n_jobs, "random_state": seed},
        "extra_trees": {**FOREST_PARAMS, "n_jobs": n_jobs, "random_state": seed},
        "hist_gradient_boosting": {
            **HIST_GB_PARAMS,
            "categorical_features": [STATUS_COLUMN],
            "early_stopping": False,
            "random_state": seed,
        },
    }
    zoo = {"lightgbm": lightgbm_candidate(kind, seed=seed, n_jobs=n_jobs)}
    zoo.update({family: Candidate(classes[which](**params[family])) for family, classes in _TREE_CLASSES.items()})
    if kind == "regression":
        zoo["ridge"] = Candidate(_tabular(Ridge(alpha=1.0), scale=True))
        # The floor: predicting the training mean scores R^2 = 0 (slightly below on held-out folds).
        zoo["mean"] = Candidate(DummyRegressor(strategy="mean"))
    else:
        zoo["logistic_regression"] = Candidate(_tabular(LogisticRegression(max_iter=1000), scale=True))
        zoo["gaussian_nb"] = Candidate(_tabular(GaussianNB(), scale=False))
    return zoo
