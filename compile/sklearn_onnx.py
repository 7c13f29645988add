"""scikit-learn models to ONNX fp32 with skl2onnx: forests, extra trees, logistic regression, naive Bayes, ridge.

A bundle keeps scikit-learn models as treelite checkpoints or JSON parameters, never as pickled estimators, so
the ONNX export is made when the bundle is written (:meth:`engine.bundle.format.Bundle.write`), from the fitted
estimator. Inputs are float32 ``(n, k)``; outputs follow :class:`compile.onnx_export.OnnxModel` (classifiers give
probabilities, no ZipMap).

Two things skl2onnx does not do, handled here:

- The project's own transformer in the linear and naive Bayes pipelines (``engine.models.zoo.StatusOneHot``) gets a
  converter, registered by its owner with :func:`register_indicator_columns`: one column becomes 0/1 indicators
  of its values 0..k-1, appended after the other columns (Gather, Equal, Cast, Concat).
- skl2onnx's tree converters drop the NaN direction that scikit-learn learns per split (``missing_go_to_left``;
  skl2onnx issue #1253), so every NaN took the false branch. :func:`sklearn_onnx` sets ONNX's
  ``nodes_missing_value_tracks_true`` from the fitted trees.

Not exported (:class:`SklearnOnnxUnavailable` says why): HistGradientBoosting with categorical features, whose
bitset splits skl2onnx cannot convert (skl2onnx issues #1051 and #1101; the zoo always marks machine_status
categorical), and the ``mean`` baseline (skl2onnx has no DummyRegressor converter).
"""

from __future__ import annotations

import numpy as np
import onnx

from compile.errors import CompileError
from compile.onnx_export import ONNX_OPSET

__all__ = ["SklearnOnnxUnavailable", "register_indicator_columns", "sklearn_onnx"]


class SklearnOnnxUnavailable(CompileError):
    """The model is of a kind skl2onnx cannot convert faithfully; the message says why."""


def sklearn_onnx(estimator, n_features: int) -> onnx.ModelProto:
    """The fp32 ONNX model of a fitted scikit-learn estimator or pipeline reading ``n_features`` float32 columns."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.dummy import DummyRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    if isinstance(final, HistGradientBoostingClassifier | HistGradientBoostingRegressor) and bool(
        np.any(getattr(final, "is_categorical_", None))
    ):
        raise SklearnOnnxUnavailable(
            "skl2onnx cannot convert HistGradientBoosting's categorical splits (skl2onnx issues #1051, #1101)"
        )
    if isinstance(final, DummyRegressor):
        raise SklearnOnnxUnavailable("skl2onnx has no converter for DummyRegressor (the mean baseline)")
    options = {id(final): {"zipmap": False}} if hasattr(final, "predict_proba") else None
    try:
        model = convert_sklearn(
            estimator,
            initial_types=[("input", FloatTensorType([None, n_features]))],
            options=options,
            target_opset={"": ONNX_OPSET, "ai.onnx.ml": 3},
        )
    except Exception as exc:  # skl2onnx raises many types; the message is what matters
        raise CompileError(f"skl2onnx could not convert {type(final).__name__}: {exc}") from None
    if hasattr(final, "estimators_") and hasattr(final.estimators_[0], "tree_"):
        _set_missing_directions(model, final)
    onnx.checker.check_model(model)
    return model


def _set_missing_directions(model: onnx.ModelProto, forest) -> None:
    """Copy each split's learnt NaN direction into the tree ensemble node (skl2onnx issue #1253)."""
    nodes = [n for n in model.graph.node if n.op_type in ("TreeEnsembleClassifier", "TreeEnsembleRegressor")]
    if len(nodes) != 1:
        raise CompileError(f"expected one tree ensemble node in skl2onnx's output, found {len(nodes)}")
    attributes = {a.name: a for a in nodes[0].attribute}
    trees = list(attributes["nodes_treeids"].ints)
    ids = list(attributes["nodes_nodeids"].ints)
    left = [np.asarray(e.tree_.missing_go_to_left, dtype=bool) for e in forest.estimators_]
    # The true branch of BRANCH_LEQ is the left child: NaN follows it where scikit-learn sends NaN left.
    tracks_true = [int(left[t][k]) for t, k in zip(trees, ids, strict=True)]
    if "nodes_missing_value_tracks_true" in attributes:
        nodes[0].attribute.remove(attributes["nodes_missing_value_tracks_true"])
    nodes[0].attribute.append(onnx.helper.make_attribute("nodes_missing_value_tracks_true", tracks_true))


def register_indicator_columns(transformer_class: type, column: int, values: int) -> None:
    """Teach skl2onnx a transformer that replaces input ``column`` by 0/1 indicators of ``values`` 0..values-1,
    appended after the remaining columns in their order."""
    from skl2onnx import update_registered_converter

    def shape(operator) -> None:
        rows = operator.inputs[0].get_first_dimension()
        columns = operator.inputs[0].get_second_dimension()
        width = None if columns is None else columns - 1 + values
        operator.outputs[0].type = operator.inputs[0].type.__class__([rows, width])

    def convert(scope, operator, container) -> None:
        from skl2onnx.algebra.onnx_ops import OnnxCast, OnnxConcat, OnnxEqual, OnnxGather

        source = operator.inputs[0]
        width = source.get_second_dimension()
        if width is None or not 0 <= column < width:
            raise CompileError(f"{transformer_class.__name__}: column {column} is not among {width} input columns")
        version = container.target_opset
        others = np.array([j for j in range(width) if j != column], dtype=np.int64)
        kept = OnnxGather(source, others, axis=1, op_version=version)
        value = OnnxGather(source, np.array([column], dtype=np.int64), axis=1, op_version=version)
        indicators = [
            OnnxCast(
                OnnxEqual(value, np.array([k], dtype=np.float32), op_version=version),
                to=onnx.TensorProto.FLOAT,
                op_version=version,
            )
            for k in range(values)
        ]
        result = OnnxConcat(kept, *indicators, axis=1, op_version=version, output_names=operator.outputs[:1])
        result.add_to(scope, container)

    update_registered_converter(transformer_class, f"iotengine_{transformer_class.__name__}", shape, convert)
