"""scikit-learn tree ensembles as treelite models whose leaves hold scikit-learn's own values.

treelite's importer divides each classifier leaf by its sum; scikit-learn's ``predict_proba`` adds
``tree_.value`` as it is (already fractions, which need not sum to exactly 1.0). 47 of 2,875 leaves of a
30-tree forest differ in the last bit, and with them the averaged probabilities. :func:`import_sklearn_trees`
writes scikit-learn's values back into the treelite model, so every compiler that reads it (tl2cgen, treelite's
interpreter, compile/tree_codegen.py) reproduces ``predict_proba`` bit for bit.
"""

from __future__ import annotations

import numpy as np
import treelite

from compile.errors import CompileError

__all__ = ["import_sklearn_trees"]


def import_sklearn_trees(estimator) -> treelite.Model:
    """treelite's import of a fitted scikit-learn forest or HistGradientBoosting model, with the forests' class
    probabilities exactly scikit-learn's."""
    model = treelite.sklearn.import_model(estimator)
    trees = getattr(estimator, "estimators_", None)
    if trees is None or not hasattr(estimator, "classes_"):
        return model  # regressors and HistGradientBoosting keep scalar leaves, imported as they are
    if len(trees) != model.num_tree:
        raise CompileError(f"treelite imported {model.num_tree} trees of a forest of {len(trees)}")
    for k, tree in enumerate(trees):
        accessor = model.get_tree_accessor(k)
        vector = np.array(accessor.get_field("leaf_vector"), dtype=np.float64)
        begin, end = accessor.get_field("leaf_vector_begin"), accessor.get_field("leaf_vector_end")
        values = tree.tree_.value[:, 0, :]
        for node in np.flatnonzero(end > begin):
            if end[node] - begin[node] != values.shape[1]:
                raise CompileError(f"tree {k}, node {node}: {end[node] - begin[node]} classes, not {values.shape[1]}")
            vector[begin[node] : end[node]] = values[node]
        accessor.set_field("leaf_vector", vector)
    return model
