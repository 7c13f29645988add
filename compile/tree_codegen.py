"""iotengine's own C code generator for tree ensembles, beside tl2cgen: the same treelite model in, C99 out.

:func:`forest_source` reads a model through treelite's field accessors (LightGBM binary, multiclass and
regression with categorical splits and missing values; scikit-learn's random forests and extra trees, averaged;
HistGradientBoosting as treelite imports it, which is not yet always scikit-learn's) and fills in
compile/c/iot_forest.c.in. The library exports tl2cgen's ABI, so :class:`compile.binding.NativeModel` loads it;
:func:`build_forest_library` compiles it. It is not wired into bundles, the edge library or the benchmarks yet.

What differs from tl2cgen's code (compile/tl2cgen_source.py rewrites tl2cgen's output towards the same ends):

- each node is one comparison on the row's own double: missing (NaN) follows the node's default direction by
  the choice of comparison, so no row is copied and no missing flag is tested;
- thresholds and leaf values are hex-float literals, the exact bits treelite holds;
- categorical splits test a bitset of any width (tl2cgen's masks stop at 64 categories).

The sums are the framework's bit for bit: within a row the trees add their leaves in model order, then come
tl2cgen's averaging, base scores and transforms (tests/compile/test_tree_codegen.py compares with LightGBM and
scikit-learn for equality).

>>> import lightgbm as lgb, numpy as np
>>> X = np.arange(40.0).reshape(20, 2)
>>> booster = lgb.train({"objective": "regression", "verbose": -1, "min_data_in_leaf": 2}, lgb.Dataset(X, X[:, 0]), 1)
>>> "int iot_predict(" in forest_source(treelite.frontend.from_lightgbm(booster), round_float32=False)
True
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import treelite

from compile.errors import CompileError
from compile.native import CFLAGS, build_library
from compile.templates import c_double, fill
from compile.tl2cgen_source import NativeSources

__all__ = ["TREES_PER_BLOCK", "build_forest_library", "forest_source"]

# Trees per block function: each block runs over ROWS_PER_BLOCK rows (iot_forest.c.in) before the next.
TREES_PER_BLOCK = 8
_POSTPROCESSORS = {"identity": 0, "identity_multiclass": 0, "sigmoid": 1, "softmax": 2}
_COMPLEMENT = {"<=": ">", "<": ">=", ">=": "<", ">": "<="}
# treelite's enums (include/treelite/enum/operator.h, tree_node_type.h)
_OPERATORS = {2: "<", 3: "<=", 4: ">", 5: ">="}
_NODE_TYPES = {0: "leaf", 1: "numerical_test_node", 2: "categorical_test_node"}


def _header(model: treelite.Model) -> dict:
    """The model-wide fields: the JSON dump would serve, but it writes an infinite threshold as nothing."""
    header = model.get_header_accessor()
    names = ("num_feature", "num_target", "num_class", "class_id", "average_tree_output", "base_scores")
    document = {name: header.get_field(name) for name in names}
    document["postprocessor"] = str(header.get_field("postprocessor"))
    document["sigmoid_alpha"] = float(header.get_field("sigmoid_alpha")[0])
    return document


def _tree_nodes(model: treelite.Model, index: int) -> list[dict]:
    """One tree's nodes from treelite's arrays, in the shape of its JSON dump (inf thresholds kept)."""
    tree = model.get_tree_accessor(index)
    f = {name: tree.get_field(name) for name in (
        "node_type", "cleft", "cright", "split_index", "default_left", "threshold", "cmp", "leaf_value",
        "leaf_vector", "leaf_vector_begin", "leaf_vector_end", "category_list", "category_list_begin",
        "category_list_end", "category_list_right_child",
    )}  # fmt: skip
    nodes = []
    for i in range(int(tree.get_field("num_nodes")[0])):
        kind = _NODE_TYPES.get(int(f["node_type"][i]))
        if kind is None:
            raise CompileError(f"tree {index}, node {i}: treelite node type {int(f['node_type'][i])} is unknown")
        node = {"node_id": i, "node_type": kind}
        if kind == "leaf":
            begin, end = int(f["leaf_vector_begin"][i]), int(f["leaf_vector_end"][i])
            node["leaf_value"] = (
                [float(v) for v in f["leaf_vector"][begin:end]] if end > begin else float(f["leaf_value"][i])
            )
        else:
            node.update(
                split_feature_id=int(f["split_index"][i]),
                default_left=bool(f["default_left"][i]),
                left_child=int(f["cleft"][i]),
                right_child=int(f["cright"][i]),
            )
            if kind == "numerical_test_node":
                op = _OPERATORS.get(int(f["cmp"][i]))
                if op is None:
                    raise CompileError(f"tree {index}, node {i}: comparison {int(f['cmp'][i])} is not <, <=, > or >=")
                node.update(comparison_op=op, threshold=float(f["threshold"][i]))
            else:
                begin, end = int(f["category_list_begin"][i]), int(f["category_list_end"][i])
                node.update(
                    category_list=[int(c) for c in f["category_list"][begin:end]],
                    category_list_right_child=bool(f["category_list_right_child"][i]),
                )
        nodes.append(node)
    return nodes


class _Emitter:
    """The C of the trees: a nested if/else per tree, the category sets they test."""

    def __init__(self, n_outputs: int):
        self.n_outputs = n_outputs
        self.sets: dict[tuple[int, ...], str] = {}

    def category_set(self, categories: list[int]) -> tuple[str, int]:
        key = tuple(sorted({int(c) for c in categories}))
        if key and key[0] < 0:
            raise CompileError(f"a categorical split lists negative categories {key}")
        words = max(1, (key[-1] // 32 + 1) if key else 1)
        if key not in self.sets:
            self.sets[key] = f"cats_{len(self.sets)}"
        return self.sets[key], words

    def set_definitions(self) -> str:
        lines = []
        for key, name in self.sets.items():
            words = [0] * max(1, (key[-1] // 32 + 1) if key else 1)
            for c in key:
                words[c // 32] |= 1 << (c % 32)
            lines.append(f"static const uint32_t {name}[{len(words)}] = {{{', '.join(f'{w}u' for w in words)}}};")
        return "\n".join(lines)

    def condition(self, node: dict) -> str:
        """C that is true when the row goes to the node's left child."""
        x = f"x[{int(node['split_feature_id'])}]"
        default_left = bool(node["default_left"])
        if node["node_type"] == "numerical_test_node":
            op, threshold = node["comparison_op"], c_double(node["threshold"])
            if op not in _COMPLEMENT:
                raise CompileError(f"comparison {op!r} is not one of {sorted(_COMPLEMENT)}")
            # Every comparison with NaN is false: !(x op' t) sends NaN left, (x op t) sends it right.
            return f"!({x} {_COMPLEMENT[op]} {threshold})" if default_left else f"{x} {op} {threshold}"
        if node["node_type"] == "categorical_test_node":
            name, words = self.category_set(node["category_list"])
            member = f"in_set({name}, {words}u, {x})"
            if node.get("category_list_right_child"):
                member = f"!{member}"
            return f"(isnan({x}) ? {int(default_left)} : {member})"
        raise CompileError(f"node type {node['node_type']!r} is not a test this generator knows")

    def leaf(self, node: dict, target: int, indent: str) -> list[str]:
        value = node["leaf_value"]
        if isinstance(value, list):  # a forest's leaf: one value per class
            if len(value) != self.n_outputs:
                raise CompileError(f"a leaf holds {len(value)} values for {self.n_outputs} outputs")
            return [f"{indent}y[{k}] += {c_double(v)};" for k, v in enumerate(value)]
        return [f"{indent}y[{target}] += {c_double(value)};"]

    def tree(self, tree: dict, target: int) -> list[str]:
        nodes = {int(node["node_id"]): node for node in tree["nodes"]}
        lines: list[str] = []

        def emit(node_id: int, depth: int) -> None:
            node, indent = nodes[node_id], "  " * depth
            if "leaf_value" in node:
                lines.extend(self.leaf(node, target, indent))
                return
            lines.append(f"{indent}if ({self.condition(node)}) {{")
            emit(int(node["left_child"]), depth + 1)
            lines.append(f"{indent}}} else {{")
            emit(int(node["right_child"]), depth + 1)
            lines.append(f"{indent}}}")

        emit(0, 1)
        return lines


def forest_source(
    model: treelite.Model,
    *,
    round_float32: bool,
    trees_per_block: int = TREES_PER_BLOCK,
) -> str:
    """The C99 source of ``model`` (compile/c/iot_forest.c.in filled in).

    ``round_float32`` rounds every input to float32 before the trees, as scikit-learn's forests compare. A forest
    gives scikit-learn's probabilities bit for bit when imported by :func:`compile.sklearn_trees.import_sklearn_trees`.
    """
    document = _header(model)
    if int(document["num_target"][0]) != 1:
        raise CompileError(f"models with {int(document['num_target'][0])} targets are not supported (one only)")
    postprocessor = document["postprocessor"]
    if postprocessor not in _POSTPROCESSORS:
        raise CompileError(f"output transform {postprocessor!r} is not one of {sorted(_POSTPROCESSORS)}")
    n_outputs = int(document["num_class"][0])
    trees = [{"nodes": _tree_nodes(model, k)} for k in range(int(model.num_tree))]
    class_ids = [int(c) for c in document["class_id"]]
    emitter = _Emitter(n_outputs)
    counts = [0] * n_outputs
    bodies = []
    for tree, class_id in zip(trees, class_ids, strict=True):
        bodies.append(emitter.tree(tree, max(class_id, 0)))
        for k in range(n_outputs) if class_id < 0 else (class_id,):
            counts[k] += 1
    blocks, names = [], []
    for start in range(0, len(bodies), trees_per_block):
        name = f"trees_{start // trees_per_block}"
        body = [line for tree in bodies[start : start + trees_per_block] for line in ["  {", *tree, "  }"]]
        blocks.append(
            f"static void {name}(const double *restrict x, double *restrict y) {{\n" + "\n".join(body) + "\n}\n"
        )
        names.append(name)
    base_scores = [float(v) for v in document["base_scores"]]
    if len(base_scores) != n_outputs:
        raise CompileError(f"{len(base_scores)} base scores for {n_outputs} outputs")
    return fill(
        "iot_forest.c.in",
        N_FEATURES=int(document["num_feature"][0]),
        N_OUTPUTS=n_outputs,
        ROUND_FLOAT32=int(round_float32),
        HAS_CATEGORIES=int(bool(emitter.sets)),
        AVERAGE=int(bool(document["average_tree_output"][0])),
        POSTPROCESS=_POSTPROCESSORS[postprocessor],
        SIGMOID_ALPHA=c_double(document["sigmoid_alpha"]),
        BASE_SCORES=", ".join(c_double(v) for v in base_scores),
        TREE_COUNTS=", ".join(c_double(max(c, 1)) for c in counts),
        CATEGORY_SETS=emitter.set_definitions(),
        TREE_BLOCKS="\n".join(blocks),
        BLOCK_NAMES=", ".join(names),
    )


def build_forest_library(
    model: treelite.Model,
    output: str | os.PathLike,
    *,
    round_float32: bool,
    compiler: str = "gcc",
    cflags: tuple[str, ...] = CFLAGS,
) -> Path:
    """Generate ``model``'s C with :func:`forest_source` and compile it into the shared library ``output``."""
    source = forest_source(model, round_float32=round_float32)
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "iot_forest.c").write_text(source)
        return build_library(NativeSources(Path(work), ("iot_forest.c",), ()), output, compiler=compiler, cflags=cflags)
