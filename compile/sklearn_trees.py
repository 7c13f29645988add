"""scikit-learn tree ensembles as treelite models whose leaves hold scikit-learn's own values.

treelite's importer divides each classifier leaf by its sum; scikit-learn's ``predict_proba`` adds
``tree_.value`` as it is (already fractions, which need not sum to exactly 1.0). 47 of 2,875 leaves of a
30-tree forest differ in the last bit, and with them the averaged probabilities. :func:`import_sklearn_trees`
writes scikit-learn's values back into the treelite model, so every compiler that reads it (tl2cgen, treelite's
interpreter, compile/tree_codegen.py) reproduces ``predict_proba`` bit for bit.

HistGradientBoosting sends a category it did not see in training (and a negative one) where it sends missing
values; treelite's categorical test sends every value outside its list to the other child.
:func:`import_sklearn_trees` rewrites each categorical split whose missing values go left as a list of the known
categories that go right, so both rules agree on every integer category. (A value that is not an integer is an
unknown category to scikit-learn but is truncated by treelite's rule, as by LightGBM's.)
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
    if hasattr(estimator, "_predictors"):
        _route_unknown_categories(estimator, model)
        return model
    trees = getattr(estimator, "estimators_", None)
    if trees is None or not hasattr(estimator, "classes_"):
        return model  # regressors keep scalar leaves, imported as they are
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


def _known_categories(estimator) -> dict[int, set[int]]:
    """Column -> the categories HistGradientBoosting saw in training (its ordinal encoder's, NaN left out)."""
    if getattr(estimator, "_preprocessor", None) is None:
        return {}
    encoder = estimator._preprocessor.named_transformers_["encoder"]
    columns = np.flatnonzero(estimator.is_categorical_)
    known = {}
    for column, categories in zip(columns, encoder.categories_, strict=True):
        values = [float(c) for c in categories if not np.isnan(c)]
        if any(v != int(v) or v < 0 for v in values):
            raise CompileError(f"column {column}: categories {values} are not all non-negative integers")
        known[int(column)] = {int(v) for v in values}
    return known


def _route_unknown_categories(estimator, model: treelite.Model) -> None:
    """Make each categorical split of a HistGradientBoosting model send unknown categories with missing values."""
    known = _known_categories(estimator)
    for k in range(int(model.num_tree)):
        accessor = model.get_tree_accessor(k)
        kinds = accessor.get_field("node_type")
        if not np.any(kinds == 2):
            continue
        flat = accessor.get_field("category_list")
        begin, end = accessor.get_field("category_list_begin"), accessor.get_field("category_list_end")
        right_child = np.array(accessor.get_field("category_list_right_child"))
        default_left = accessor.get_field("default_left")
        features = accessor.get_field("split_index")
        lists = [list(flat[begin[i] : end[i]]) for i in range(len(kinds))]
        for i in np.flatnonzero(kinds == 2):
            feature = int(features[i])
            if feature not in known:
                raise CompileError(f"tree {k}, node {i}: a categorical split on column {feature}, not categorical")
            listed = {int(c) for c in lists[i]}
            left = known[feature] - listed if right_child[i] else listed & known[feature]
            if default_left[i]:  # unknown goes left: list the known categories that go right
                lists[i], right_child[i] = sorted(known[feature] - left), 1
            else:
                lists[i], right_child[i] = sorted(left), 0
        sizes = np.array([len(values) for values in lists], dtype=begin.dtype)
        ends = np.cumsum(sizes).astype(end.dtype)
        accessor.set_field("category_list", np.array([c for values in lists for c in values], dtype=flat.dtype))
        accessor.set_field("category_list_begin", (ends - sizes).astype(begin.dtype))
        accessor.set_field("category_list_end", ends)
        flags = right_child.astype(accessor.get_field("category_list_right_child").dtype)
        accessor.set_field("category_list_right_child", flags)
