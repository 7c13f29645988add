"""A LightGBM model as tensor operations (the GEMM form), so that onnxruntime's quantizer can make it int8.

onnxruntime's quantizer leaves the ``TreeEnsemble*`` operators untouched: an int8 tree model must first be
written as matrix products, the way hummingbird compiles trees. Every tree is padded to ``I`` internal nodes and
``L`` leaves and stacked as one slice of 3-D tensors (one dense 2-D path matrix over all trees would grow with
the square of the model)::

    value[n, t*I + i] = z[n, column(t, i)]                  feature selection (Gather, or MatMul with a 0/1 matrix)
    left[n, t, i]     = isnan(x[feature(t, i)]) ? default_left(t, i) : value <= threshold(t, i)
    hits[t, n, l]     = left[t, n, :] @ path[t, :, l]       path[t, i, l] = +1 if leaf l lies left of node i, -1 right
    reached[t, n, l]  = hits[t, n, l] > left_turns[t, l] - 0.5      exactly one leaf per tree and row
    margin[n, k]      = sum_t scale[t] * (reached[t, n, :] @ leaves[t, :, k] / scale[t])
    output            = sigmoid / softmax / identity of margin  (LightGBM's objective)

``z`` is the input with NaN replaced by 0, followed by one column per distinct categorical split: minus the
number of the row's categories that go left (so ``value <= -0.5`` means "go left"). LightGBM's missing-value
rules map onto ``default_left``: ``missing_type`` NaN uses the node's default direction, None compares 0.0
(NaN is read as zero), and a categorical NaN goes right. ``missing_type`` Zero (``zero_as_missing``) is refused.

The hits and reached tensors hold small integers, so quantizing the path matrix to int8 loses nothing; the
leaf values and (with ``selection="matmul"``) the feature-selection inputs are where int8 costs accuracy.

Examples
--------
>>> import lightgbm as lgb, numpy as np, onnxruntime as ort
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(500, 3)); y = (X[:, 0] + X[:, 1] > 0).astype(int)
>>> booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1}, lgb.Dataset(X, y), 20)
>>> session = ort.InferenceSession(gemm_model(booster).SerializeToString(), providers=["CPUExecutionProvider"])
>>> p = session.run(None, {"input": X.astype(np.float32)})[0][:, 0]
>>> bool(np.abs(p - booster.predict(X)).max() < 1e-5)
True
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from compile.errors import CompileError, InvalidInputError
from compile.lightgbm_dump import missing_goes_left
from compile.lightgbm_dump import objective as lightgbm_objective
from compile.quiet import third_party_output

__all__ = ["GEMM_OPSET", "GemmTrees", "float32_at_most", "gemm_model", "gemm_trees", "quantize_int8"]

GEMM_OPSET = 17
_NEVER = 1.0e9  # left-turn count of a padding leaf: no row reaches it


@dataclass(frozen=True)
class GemmTrees:
    """The stacked tensors of one model (see the module docstring); built by :func:`gemm_trees`."""

    n_features: int
    columns: np.ndarray  # (T*I,) int64 column of z each node reads
    thresholds: np.ndarray  # (T*I,) float32, rounded down so float32(x) <= t matches x <= t
    default_left: np.ndarray  # (T*I,) bool: direction of a missing value
    missing_feature: np.ndarray  # (T*I,) int64 input column whose NaN-ness decides "missing"
    category_sets: list  # (feature, categories going left) per categorical split column
    path: np.ndarray  # (T, I, L) float32 in {-1, 0, 1}
    left_turns: np.ndarray  # (T, 1, L) float32
    leaves: np.ndarray  # (T, L, K) float32
    objective: str  # "binary", "multiclass" or "regression"
    sigmoid: float

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(trees, internal nodes per tree, leaves per tree, outputs)."""
        trees, nodes, leaves = self.path.shape
        return trees, nodes, leaves, self.leaves.shape[2]


def gemm_trees(booster: lgb.Booster) -> GemmTrees:
    """The padded, stacked tensors of a LightGBM model, read from its own JSON dump."""
    dump = booster.dump_model()
    objective, sigmoid = lightgbm_objective(dump)
    n_features = int(dump["max_feature_idx"]) + 1
    n_outputs = int(dump["num_tree_per_iteration"])
    sets: dict[tuple[int, tuple[int, ...]], int] = {}
    parsed = [_flatten(info["tree_structure"], n_features, sets) for info in dump["tree_info"]]
    n_nodes = max(1, max(len(nodes) for nodes, _ in parsed))
    n_leaves = max(len(leaves) for _, leaves in parsed)
    n_trees = len(parsed)
    columns = np.zeros((n_trees, n_nodes), dtype=np.int64)
    thresholds = np.zeros((n_trees, n_nodes), dtype=np.float64)
    default_left = np.zeros((n_trees, n_nodes), dtype=bool)
    missing_feature = np.zeros((n_trees, n_nodes), dtype=np.int64)
    path = np.zeros((n_trees, n_nodes, n_leaves), dtype=np.float32)
    left_turns = np.full((n_trees, 1, n_leaves), _NEVER, dtype=np.float32)
    leaf_values = np.zeros((n_trees, n_leaves, n_outputs), dtype=np.float32)
    for t, (nodes, leaves) in enumerate(parsed):
        for i, (column, threshold, left, feature) in enumerate(nodes):
            columns[t, i], thresholds[t, i], default_left[t, i], missing_feature[t, i] = (
                column,
                threshold,
                left,
                feature,
            )
        for leaf, (value, trail) in enumerate(leaves):
            for node, direction in trail:
                path[t, node, leaf] = direction
            left_turns[t, 0, leaf] = sum(1 for _, direction in trail if direction > 0)
            leaf_values[t, leaf, t % n_outputs] = value
    return GemmTrees(
        n_features=n_features,
        columns=columns.reshape(-1),
        thresholds=float32_at_most(thresholds.reshape(-1)),
        default_left=default_left.reshape(-1),
        missing_feature=missing_feature.reshape(-1),
        category_sets=[(feature, categories) for (feature, categories), _ in sorted(sets.items(), key=lambda s: s[1])],
        path=path,
        left_turns=left_turns,
        leaves=leaf_values,
        objective=objective,
        sigmoid=sigmoid,
    )


def _flatten(tree: dict, n_features: int, sets: dict) -> tuple[list, list]:
    """Internal nodes (column, threshold, default_left, feature) and leaves (value, [(node, +1 left / -1 right)])
    of one tree of LightGBM's dump; categorical splits get a column per distinct (feature, categories) in ``sets``.
    """
    nodes: list[tuple[int, float, bool, int]] = []
    leaves: list[tuple[float, list]] = []
    stack = [(tree, [])]
    while stack:
        node, trail = stack.pop()
        if "leaf_value" in node:
            leaves.append((float(node["leaf_value"]), trail))
            continue
        index = len(nodes)
        feature = int(node["split_feature"])
        if node["decision_type"] == "==":
            categories = tuple(sorted(int(c) for c in str(node["threshold"]).split("||")))
            column = n_features + sets.setdefault((feature, categories), len(sets))
            nodes.append((column, -0.5, False, feature))  # a NaN category goes right, as in LightGBM
        elif node["decision_type"] == "<=":
            nodes.append((feature, float(node["threshold"]), missing_goes_left(node), feature))
        else:
            raise CompileError(f"tree split {node['decision_type']!r} is not supported")
        stack.append((node["right_child"], [*trail, (index, -1.0)]))
        stack.append((node["left_child"], [*trail, (index, 1.0)]))
    return nodes, leaves


def float32_at_most(values: np.ndarray) -> np.ndarray:
    """The largest float32 <= each value: then ``float32(x) <= t32`` equals ``float32(x) <= t`` for every x."""
    with np.errstate(over="ignore"):  # LightGBM may split at +-1.8e308: +-inf in float32, then stepped down below
        rounded = values.astype(np.float32)
    above = rounded.astype(np.float64) > values
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


def gemm_model(booster: lgb.Booster, *, selection: str = "gather") -> onnx.ModelProto:
    """The ONNX graph (float32) of a LightGBM model in GEMM form.

    Parameters
    ----------
    booster : lightgbm.Booster
    selection : {"gather", "matmul"}, default="gather"
        How each node reads its input: ``"gather"`` indexes the column (exact, nothing to quantize);
        ``"matmul"`` multiplies by a 0/1 selection matrix, the textbook GEMM form, whose input activations
        the int8 quantizer then rounds to 256 levels over the range of all features.

    Returns
    -------
    onnx.ModelProto
        Input ``input``: float32 (n, features); output ``output``: float32 (n, outputs), probabilities for
        classifiers (sigmoid, or softmax over classes), the prediction for regression.
    """
    if selection not in ("gather", "matmul"):
        raise InvalidInputError(f"selection must be 'gather' or 'matmul', not {selection!r}")
    g = gemm_trees(booster)
    n_trees, n_nodes, _, n_outputs = g.shape
    # Each tree's leaves in [-1, 1] times a float32 scale per tree: int8 then rounds every tree relative to its own
    # range. One scale for all trees would be set by the first tree, which carries LightGBM's initial score.
    tree_scale = np.abs(g.leaves).max(axis=(1, 2), keepdims=True)
    tree_scale[tree_scale == 0] = 1.0
    inits = [
        numpy_helper.from_array(np.float32(0.0).reshape(()), "zero"),
        numpy_helper.from_array(g.missing_feature, "missing_feature"),
        numpy_helper.from_array(g.default_left.astype(np.float32), "default_left"),
        numpy_helper.from_array(g.thresholds, "thresholds"),
        numpy_helper.from_array(np.array([-1, n_trees, n_nodes], dtype=np.int64), "node_shape"),
        numpy_helper.from_array(g.path, "path"),
        numpy_helper.from_array(g.left_turns - np.float32(0.5), "reach_above"),
        numpy_helper.from_array(g.leaves / tree_scale, "leaves"),
        numpy_helper.from_array(tree_scale, "tree_scale"),
    ]
    nodes = [
        helper.make_node("IsNaN", ["input"], ["is_missing"]),
        helper.make_node("Where", ["is_missing", "zero", "input"], ["x0"]),
    ]
    value_inputs = ["x0"]
    if g.category_sets:
        # One-hot of each categorical feature's values, then -(number of left-going categories) per split.
        width = 1 + max(max(c) for _, c in g.category_sets)
        features = sorted({f for f, _ in g.category_sets})
        inits.append(numpy_helper.from_array(np.arange(width, dtype=np.float32).reshape(1, -1), "category_codes"))
        inits.append(numpy_helper.from_array(np.array(features, dtype=np.int64), "category_features"))
        membership = np.zeros((len(features) * width, len(g.category_sets)), dtype=np.float32)
        for s, (feature, categories) in enumerate(g.category_sets):
            for c in categories:
                membership[features.index(feature) * width + c, s] = -1.0
        inits.append(numpy_helper.from_array(membership, "membership"))
        inits.append(numpy_helper.from_array(np.array([-1, len(features), 1], dtype=np.int64), "column_shape"))
        inits.append(numpy_helper.from_array(np.array([0, len(features) * width], dtype=np.int64), "flat_shape"))
        nodes += [
            helper.make_node("Gather", ["x0", "category_features"], ["category_values"], axis=1),
            helper.make_node("Reshape", ["category_values", "column_shape"], ["category_column"]),
            helper.make_node("Equal", ["category_column", "category_codes"], ["is_category"]),
            helper.make_node("Cast", ["is_category"], ["one_hot"], to=TensorProto.FLOAT),
            helper.make_node("Reshape", ["one_hot", "flat_shape"], ["one_hot_flat"]),
            helper.make_node("MatMul", ["one_hot_flat", "membership"], ["set_columns"]),
        ]
        value_inputs.append("set_columns")
    nodes.append(helper.make_node("Concat", value_inputs, ["z"], axis=1))
    if selection == "gather":
        inits.append(numpy_helper.from_array(g.columns, "columns"))
        nodes.append(helper.make_node("Gather", ["z", "columns"], ["value"], axis=1))
    else:
        width = g.n_features + len(g.category_sets)
        select = np.zeros((width, g.columns.size), dtype=np.float32)
        select[g.columns, np.arange(g.columns.size)] = 1.0
        inits.append(numpy_helper.from_array(select, "select"))
        nodes.append(helper.make_node("MatMul", ["z", "select"], ["value"]))
    nodes += [
        helper.make_node("LessOrEqual", ["value", "thresholds"], ["below"]),
        helper.make_node("Gather", ["is_missing", "missing_feature"], ["node_missing"], axis=1),
        helper.make_node("Cast", ["below"], ["below_float"], to=TensorProto.FLOAT),
        helper.make_node("Where", ["node_missing", "default_left", "below_float"], ["left_float"]),
        helper.make_node("Reshape", ["left_float", "node_shape"], ["left_by_tree"]),
        helper.make_node("Transpose", ["left_by_tree"], ["left"], perm=[1, 0, 2]),
        helper.make_node("MatMul", ["left", "path"], ["hits"]),
        helper.make_node("Greater", ["hits", "reach_above"], ["is_reached"]),
        helper.make_node("Cast", ["is_reached"], ["reached"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["reached", "leaves"], ["unit_margin"]),
        helper.make_node("Mul", ["unit_margin", "tree_scale"], ["tree_margin"]),
        helper.make_node("ReduceSum", ["tree_margin", "sum_axis"], ["margin"], keepdims=0),
    ]
    inits.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "sum_axis"))
    if g.objective == "binary":
        inits.append(numpy_helper.from_array(np.float32(g.sigmoid).reshape(()), "sigmoid_scale"))
        nodes += [
            helper.make_node("Mul", ["margin", "sigmoid_scale"], ["scaled_margin"]),
            helper.make_node("Sigmoid", ["scaled_margin"], ["output"]),
        ]
    elif g.objective == "multiclass":
        nodes.append(helper.make_node("Softmax", ["margin"], ["output"], axis=1))
    else:
        nodes.append(helper.make_node("Identity", ["margin"], ["output"]))
    graph = helper.make_graph(
        nodes,
        "iotengine_gemm_trees",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, g.n_features])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, n_outputs])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", GEMM_OPSET)], producer_name="iotengine")
    onnx.checker.check_model(model)
    return model


def quantize_int8(model: onnx.ModelProto) -> bytes:
    """The model with every MatMul's weights in int8 (onnxruntime's dynamic quantizer), serialized."""
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as work:
        source, target = Path(work) / "fp32.onnx", Path(work) / "int8.onnx"
        source.write_bytes(model.SerializeToString())
        with third_party_output():
            quantize_dynamic(source, target, weight_type=QuantType.QInt8, reduce_range=True)
        data = target.read_bytes()
    onnx.checker.check_model(onnx.load(io.BytesIO(data)))
    return data
