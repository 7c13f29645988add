"""LightGBM trees as C over uint8 bin codes: static const tables, no floating point in the traversal.

LightGBM finds its split thresholds among at most ``max_bin`` (255) bin boundaries per feature, so a model
uses at most 254 distinct thresholds per feature. With the sorted thresholds ``t_0 < ... < t_m`` of a feature,
the code of a value is ``code(x) = #{j : t_j < x}``, and ``x <= t_k`` exactly when ``code(x) <= k``. Each row
is coded once (one binary search per feature, in double precision, with LightGBM's thresholds printed to
round-trip), then every tree is walked comparing bytes; code 255 marks a missing value. Leaf values are summed
in double in LightGBM's order and transformed with LightGBM's formulas, so the predictions are LightGBM's own.

Per node the tables hold 7 bytes (feature, code, flags, two int16 children, tree-local; a negative child is a
leaf), against tl2cgen's unrolled if-else code. Categorical splits use the category as the code (a value that
is negative, NaN or not below 255 goes right, as in LightGBM) and a 256-bit set per split.

The generated source has the ABI of :data:`compile.tl2cgen_source.BATCH_SOURCE` (``get_num_feature``,
``iot_num_outputs``, ``iot_predict``), so :class:`compile.binding.NativeModel` loads it.

Examples
--------
>>> import lightgbm as lgb, numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(500, 3)); y = (X[:, 0] > 0).astype(int)
>>> booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1}, lgb.Dataset(X, y), 10)
>>> source = uint8_source(booster)
>>> "static const uint8_t node_code" in source and "double" not in source[source.index("walk_tree"):][:600]
True
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from compile.errors import CompileError
from compile.lightgbm_dump import missing_goes_left
from compile.lightgbm_dump import objective as lightgbm_objective

__all__ = ["MISSING_CODE", "uint8_source"]

MISSING_CODE = 255
_DEFAULT_LEFT, _CATEGORICAL = 1, 2


def uint8_source(booster: lgb.Booster, *, row_function: str | None = None) -> str:
    """C99 source of the model over uint8 codes.

    By default it has the ``iot_predict`` batch ABI. With ``row_function``, it defines only that function,
    ``void row_function(const double *x, double *y)`` (one row in, the transformed outputs out), and every
    other symbol is static: the form the edge library (:mod:`compile.edge`) links five of.
    """
    dump = booster.dump_model()
    objective, sigmoid = lightgbm_objective(dump)
    n_features = int(dump["max_feature_idx"]) + 1
    n_outputs = int(dump["num_tree_per_iteration"])
    trees = [info["tree_structure"] for info in dump["tree_info"]]

    thresholds: dict[int, set[float]] = {}
    categorical: set[int] = set()
    stack = list(trees)
    while stack:
        node = stack.pop()
        if "leaf_value" in node:
            continue
        feature = int(node["split_feature"])
        if node["decision_type"] == "==":
            categorical.add(feature)
        else:
            thresholds.setdefault(feature, set()).add(float(node["threshold"]))
        stack += [node["left_child"], node["right_child"]]
    if categorical & set(thresholds):
        raise CompileError("a feature is split both as categorical and as numeric; no uint8 form for that")
    sorted_thresholds = {f: sorted(v) for f, v in thresholds.items()}
    for feature, values in sorted_thresholds.items():
        if len(values) >= MISSING_CODE:
            raise CompileError(f"feature {feature} has {len(values)} thresholds; uint8 codes allow 254 (max_bin 255)")

    features, codes, flags, lefts, rights, leaves, sets = [], [], [], [], [], [], []
    tree_nodes, tree_leaves = [], []
    set_index: dict[tuple[int, ...], int] = {}

    def add_node(feature: int, code: int, flag: int, child: int = 0) -> None:
        features.append(feature)
        codes.append(code)
        flags.append(flag)
        lefts.append(child)
        rights.append(child)

    for tree in trees:
        tree_nodes.append(len(features))
        tree_leaves.append(len(leaves))
        node_base, leaf_base = len(features), len(leaves)
        if "leaf_value" in tree:  # a single-leaf tree: one node whose both children are that leaf
            leaves.append(float(tree["leaf_value"]))
            add_node(0, 0, _DEFAULT_LEFT, child=-1)
            continue
        pending = [(tree, None, None)]  # (node, parent index, is_left)
        while pending:
            node, parent, is_left = pending.pop()
            if "leaf_value" in node:
                child = -1 - (len(leaves) - leaf_base)
                leaves.append(float(node["leaf_value"]))
            else:
                child = len(features) - node_base
                feature = int(node["split_feature"])
                if node["decision_type"] == "==":
                    members = [int(c) for c in str(node["threshold"]).split("||")]
                    if max(members) >= MISSING_CODE:
                        raise CompileError(f"categorical split on category {max(members)}: uint8 codes allow 0..254")
                    # node_code indexes the set: identical sets share one, and a byte holds 255 of them.
                    key = tuple(sorted(members))
                    if key not in set_index:
                        if len(set_index) >= MISSING_CODE:
                            raise CompileError("over 255 distinct categorical splits: a byte cannot index them")
                        set_index[key] = len(sets)
                        sets.append(members)
                    code, flag = set_index[key], _CATEGORICAL
                elif node["decision_type"] == "<=":
                    code = sorted_thresholds[feature].index(float(node["threshold"]))
                    flag = _DEFAULT_LEFT if missing_goes_left(node) else 0
                else:
                    raise CompileError(f"tree split {node['decision_type']!r} is not supported")
                add_node(feature, code, flag)
                pending.append((node["right_child"], child, False))
                pending.append((node["left_child"], child, True))
            if parent is not None:
                (lefts if is_left else rights)[node_base + parent] = child
    n_nodes_max = max(np.diff([*tree_nodes, len(features)]))
    if n_nodes_max > 32_767 or max(np.diff([*tree_leaves, len(leaves)])) > 32_768:
        raise CompileError("a tree has more than 32k nodes; int16 children cannot address it")

    def c_array(ctype: str, name: str, values, fmt=str) -> str:
        body = ",".join(fmt(v) for v in values) or "0"
        return f"static const {ctype} {name}[{max(1, len(values))}] = {{{body}}};\n"

    threshold_start = np.cumsum([0] + [len(sorted_thresholds.get(f, [])) for f in range(n_features)])
    all_thresholds = [t for f in range(n_features) for t in sorted_thresholds.get(f, [])]
    set_bits = []
    for members in sets:
        words = [0] * 8
        for c in members:
            words[c // 32] |= 1 << (c % 32)
        set_bits += words
    kind = {"binary": 0, "multiclass": 1, "regression": 2}[objective]
    return "".join(
        [
            "/* Generated by iotengine (compile/uint8_trees.py): LightGBM trees over uint8 bin codes. */\n",
            "#include <math.h>\n#include <stdint.h>\n\n",
            f"#define N_FEATURES {n_features}\n#define N_OUTPUTS {n_outputs}\n#define N_TREES {len(trees)}\n",
            f"#define OBJECTIVE {kind} /* 0 binary, 1 multiclass, 2 regression */\n",
            f"#define MISSING_CODE {MISSING_CODE}\n\n",
            c_array("double", "thresholds", all_thresholds, lambda v: repr(float(v))),
            c_array("uint32_t", "threshold_start", threshold_start.tolist()),
            c_array("uint8_t", "is_categorical", [int(f in categorical) for f in range(n_features)]),
            c_array("uint32_t", "category_sets", set_bits, lambda v: f"{v}u"),
            c_array("uint8_t", "node_feature", features),
            c_array("uint8_t", "node_code", codes),
            c_array("uint8_t", "node_flags", flags),
            c_array("int16_t", "node_left", lefts),
            c_array("int16_t", "node_right", rights),
            c_array("uint32_t", "tree_node", tree_nodes),
            c_array("uint32_t", "tree_leaf", tree_leaves),
            c_array("double", "leaf_value", leaves, lambda v: repr(float(v))),
            f"static const double sigmoid_scale = {sigmoid!r};\n" if kind == 0 else "",
            _ROW,
            _BATCH if row_function is None else _EDGE_ROW.replace("@NAME@", row_function),
        ]
    )


_ROW = r"""
/* code(x) = number of the feature's thresholds below x; x <= t_k exactly when code(x) <= k. */
static uint8_t code_of(int32_t f, double x) {
  if (isnan(x)) return MISSING_CODE;
  if (is_categorical[f]) return (x >= 0.0 && x < (double)MISSING_CODE) ? (uint8_t)(int32_t)x : MISSING_CODE;
  {
    uint32_t lo = threshold_start[f], hi = threshold_start[f + 1];
    const uint32_t first = lo;
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo) / 2;
      if (thresholds[mid] < x) lo = mid + 1; else hi = mid;
    }
    return (uint8_t)(lo - first);
  }
}

/* Integer-only walk of one tree; returns the tree-local leaf index. */
static int32_t walk_tree(const uint8_t *codes, uint32_t base) {
  int32_t node = 0;
  for (;;) {
    const uint32_t at = base + (uint32_t)node;
    const uint8_t code = codes[node_feature[at]];
    const uint8_t flags = node_flags[at];
    int left;
    int32_t child;
    if (flags & 2u) {
      const uint32_t word = category_sets[8u * node_code[at] + (code >> 5)];
      left = code != MISSING_CODE && ((word >> (code & 31u)) & 1u);
    } else {
      left = code == MISSING_CODE ? (flags & 1u) : code <= node_code[at];
    }
    child = left ? node_left[at] : node_right[at];
    if (child < 0) return -1 - child;
    node = child;
  }
}

/* One row: the leaves summed in LightGBM's order, then LightGBM's output transform unless pred_margin. */
static void predict_row(const double *x, int pred_margin, double *y) {
  uint8_t codes[N_FEATURES];
  int32_t f, k, t;
  for (f = 0; f < N_FEATURES; ++f) codes[f] = code_of(f, x[f]);
  for (k = 0; k < N_OUTPUTS; ++k) y[k] = 0.0;
  for (t = 0; t < N_TREES; ++t) {
    y[t % N_OUTPUTS] += leaf_value[tree_leaf[t] + (uint32_t)walk_tree(codes, tree_node[t])];
  }
  if (pred_margin) return;
#if OBJECTIVE == 0
  y[0] = 1.0 / (1.0 + exp(-sigmoid_scale * y[0]));
#elif OBJECTIVE == 1
  {
    double top = y[0], sum = 0.0;
    for (k = 1; k < N_OUTPUTS; ++k) if (y[k] > top) top = y[k];
    for (k = 0; k < N_OUTPUTS; ++k) { y[k] = exp(y[k] - top); sum += y[k]; }
    for (k = 0; k < N_OUTPUTS; ++k) y[k] /= sum;
  }
#endif
}
"""

_BATCH = r"""
int32_t get_num_feature(void) { return N_FEATURES; }
int32_t iot_num_outputs(void) { return N_OUTPUTS; }

int iot_predict(const double *X, int64_t n_rows, int64_t row_stride, int pred_margin, double *out) {
  int64_t i;
  if (X == 0 || out == 0 || n_rows < 0 || row_stride < N_FEATURES) return 1;
  for (i = 0; i < n_rows; ++i) predict_row(X + i * row_stride, pred_margin, out + i * N_OUTPUTS);
  return 0;
}
"""

_EDGE_ROW = r"""
static void @NAME@(const double *x, double *y) { predict_row(x, 0, y); }
"""
