"""Small LightGBM models with every kind of split, for the property tests of the tree compilers."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np


def on_thresholds(rng, shape) -> np.ndarray:
    """Normal values rounded to 2 decimals: they repeat, so many test rows sit exactly on a threshold."""
    return rng.normal(size=shape).round(2)


def random_lightgbm(rng, objective: str, leaves: int, rounds: int, inputs) -> tuple[lgb.Booster, np.ndarray]:
    """A model on 4 columns (column 1 with NaN in training, column 3 categorical) and test rows that also hold
    NaN in column 2 (never NaN in training), NaN and unseen or negative categories in column 3.

    ``inputs(rng, shape)`` draws the numeric values (float32-exact ones, rounded ones, ...).
    """
    n = 500
    X = inputs(rng, (n, 4))
    X[:, 3] = rng.integers(0, 5, size=n)
    X[rng.random(n) < 0.1, 1] = np.nan
    signal = X[:, 0] + np.nan_to_num(X[:, 1]) + (X[:, 3] == 2)
    params = {"num_leaves": leaves, "min_data_in_leaf": 3, "verbose": -1, "min_data_per_group": 3, "cat_smooth": 1}
    params["num_threads"] = 1  # tests may share the machine with other LightGBM jobs: no OpenMP contention
    if objective == "binary":
        params["objective"], y = "binary", (signal > 0.5).astype(int)
    elif objective == "multiclass":
        params.update(objective="multiclass", num_class=3)
        y = np.digitize(signal, [0.0, 1.0])
    else:
        params["objective"], y = "regression", signal * 10.0
    booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=[3]), rounds)
    test = np.vstack([X, inputs(rng, (n, 4))])
    test[n:, 3] = rng.integers(-1, 7, size=n)  # unseen and negative categories go right, as in LightGBM
    test[rng.random(2 * n) < 0.1, 2] = np.nan
    test[rng.random(2 * n) < 0.05, 3] = np.nan
    return booster, test
