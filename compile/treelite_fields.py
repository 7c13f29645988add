"""A treelite model's fields as plain Python: the model-wide header and each tree's nodes, read through treelite's
field accessors in the shape of its JSON dump (which writes an infinite threshold as nothing, so it is not used).

>>> import lightgbm as lgb, numpy as np, treelite
>>> X = np.arange(40.0).reshape(20, 2)
>>> booster = lgb.train({"objective": "regression", "verbose": -1, "min_data_in_leaf": 2}, lgb.Dataset(X, X[:, 0]), 1)
>>> model = treelite.frontend.from_lightgbm(booster)
>>> [node["node_type"] for node in tree_nodes(model, 0)][:2], int(model_header(model)["num_feature"][0])
(['numerical_test_node', 'numerical_test_node'], 2)
>>> leaves_under({0: {"left_child": 1, "right_child": 2}, 1: {"leaf_value": 0.5}, 2: {"leaf_value": 1.5}})[0]
[1, 2]
"""

from __future__ import annotations

import treelite

from compile.errors import CompileError

__all__ = ["leaves_under", "model_header", "tree_nodes"]

# treelite's enums (include/treelite/enum/operator.h, tree_node_type.h)
_OPERATORS = {2: "<", 3: "<=", 4: ">", 5: ">="}
_NODE_TYPES = {0: "leaf", 1: "numerical_test_node", 2: "categorical_test_node"}


def model_header(model: treelite.Model) -> dict:
    """The model-wide fields: the JSON dump would serve, but it writes an infinite threshold as nothing."""
    header = model.get_header_accessor()
    names = ("num_feature", "num_target", "num_class", "class_id", "average_tree_output", "base_scores")
    document = {name: header.get_field(name) for name in names}
    document["postprocessor"] = str(header.get_field("postprocessor"))
    document["sigmoid_alpha"] = float(header.get_field("sigmoid_alpha")[0])
    return document


def tree_nodes(model: treelite.Model, index: int) -> list[dict]:
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


def leaves_under(nodes: dict[int, dict]) -> dict[int, list[int]]:
    """Node id -> the ids of the leaves under it, left to right, for every node of a tree (``nodes`` by id, the
    root 0), in one walk."""
    under: dict[int, list[int]] = {}

    def walk(node_id: int) -> list[int]:
        node = nodes[node_id]
        if "leaf_value" in node:
            leaves = [node_id]
        else:
            leaves = walk(int(node["left_child"])) + walk(int(node["right_child"]))
        under[node_id] = leaves
        return leaves

    walk(0)
    return under
