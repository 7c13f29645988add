"""How faithfully treelite imports scikit-learn models: the forest leaves it renormalises, and the rows where its
own interpreter (GTIL) disagrees with scikit-learn on a HistGradientBoosting model with a categorical feature, as
treelite imports it and as compile/sklearn_trees.py does.

    python scripts/measure_treelite_import.py
"""

from __future__ import annotations

import numpy as np
import treelite
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from compile.sklearn_trees import import_sklearn_trees


def forest_leaves() -> tuple[int, int]:
    """(leaves whose treelite vector differs from scikit-learn's tree_.value, leaves) of a 30-tree forest."""
    rng = np.random.default_rng(6)
    X = rng.normal(size=(2_000, 5))
    X[rng.random(2_000) < 0.05, 1] = np.nan
    forest = RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0, n_jobs=1)
    forest.fit(X, rng.integers(0, 3, size=2_000))
    model = treelite.sklearn.import_model(forest)
    differ = total = 0
    for k, tree in enumerate(forest.estimators_):
        accessor = model.get_tree_accessor(k)
        vector = accessor.get_field("leaf_vector")
        begin, end = accessor.get_field("leaf_vector_begin"), accessor.get_field("leaf_vector_end")
        for node in np.flatnonzero(end > begin):
            total += 1
            differ += not np.array_equal(vector[begin[node] : end[node]], tree.tree_.value[node, 0, :])
    return differ, total


def hist_gradient_boosting_rows(importer) -> tuple[int, int]:
    """(new rows where GTIL's margins differ from scikit-learn's _raw_predict, rows), multiclass, categorical, with
    unseen and negative categories; the model imported by ``importer``."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(3_000, 4))
    X[:, 3] = rng.integers(0, 6, size=3_000)
    X[rng.random(3_000) < 0.05, 0] = np.nan
    y = np.digitize(X[:, 1] + (X[:, 3] == 2) + np.nan_to_num(X[:, 0]), [0.0, 1.0])
    model = HistGradientBoostingClassifier(max_iter=50, categorical_features=[3]).fit(X, y)
    rows = rng.normal(size=(500, 4))
    rows[:, 3] = rng.integers(-1, 8, size=500)
    margins = treelite.gtil.predict(importer(model), rows, pred_margin=True).reshape(500, -1)
    return int((np.abs(margins - model._raw_predict(rows)).max(axis=1) > 0).sum()), 500


if __name__ == "__main__":
    differ, total = forest_leaves()
    print(f"forest leaves treelite renormalised: {differ} of {total}")
    importers = (("treelite's import", treelite.sklearn.import_model), ("import_sklearn_trees", import_sklearn_trees))
    for name, importer in importers:
        rows, n = hist_gradient_boosting_rows(importer)
        print(f"HistGradientBoosting rows where GTIL differs from scikit-learn, {name}: {rows} of {n}")
