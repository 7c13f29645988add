"""The AVX2 path of compile/tree_codegen.py: each tree as a bitmask (QuickScorer) function over 4 rows.

A tree's leaves are numbered left to right; a row starts with every bit set, and each node, tested for the 4 rows
at once, clears the leaves of its left subtree in the rows that go right. The exit leaf is the lowest bit left
(compile/c/iot_forest_core.c.in has the driver). A node costs the same whatever the data, where the scalar path's
branches cost what the branch predictor misses: ``python scripts/measure_bitmask_trees.py`` compares the two.

Covered: trees whose leaves hold one value (boosted models: LightGBM, HistGradientBoosting) with at most 64 leaves,
numerical and categorical splits (categorical ones are tested one row at a time), NaN by the node's default
direction as in the scalar path. scikit-learn's forests (deep trees, a value per class, float32 inputs) are not.
"""

from __future__ import annotations

from collections.abc import Callable

from compile.errors import CompileError
from compile.templates import c_double
from compile.treelite_fields import leaves_under

__all__ = ["MAX_LEAVES", "vector_trees"]

MAX_LEAVES = 64
# The lanes that go right, as an AVX comparison of x with the threshold: (operator, missing goes left) -> predicate.
# An ordered predicate (_OQ) is false for NaN, an unordered one (_UQ) true.
_GO_RIGHT = {
    ("<=", True): "_CMP_GT_OQ", ("<=", False): "_CMP_NLE_UQ",
    ("<", True): "_CMP_GE_OQ", ("<", False): "_CMP_NLT_UQ",
    (">=", True): "_CMP_LT_OQ", (">=", False): "_CMP_NGE_UQ",
    (">", True): "_CMP_LE_OQ", (">", False): "_CMP_NGT_UQ",
}  # fmt: skip


def _go_right(node: dict, condition: Callable[[dict], str]) -> str:
    feature = int(node["split_feature_id"])
    if node["node_type"] == "numerical_test_node":
        predicate = _GO_RIGHT.get((node["comparison_op"], bool(node["default_left"])))
        if predicate is None:
            raise CompileError(f"comparison {node['comparison_op']!r} has no AVX2 form")
        load, threshold = f"_mm256_load_pd(xt + {4 * feature})", c_double(node["threshold"])
        return f"_mm256_castpd_si256(_mm256_cmp_pd({load}, _mm256_set1_pd({threshold}), {predicate}))"
    left = condition(node)  # the scalar test, one lane at a time
    lanes = [left.replace(f"x[{feature}]", f"xt[{4 * feature + lane}]") for lane in (3, 2, 1, 0)]
    return "_mm256_set_epi64x(" + ", ".join(f"-(long long)!({test})" for test in lanes) + ")"


def vector_trees(trees: list[list[dict]], targets: list[int], condition: Callable[[dict], str]) -> tuple[str, str]:
    """The C of every tree's bitmask function (``vtree_K(xt, sums)``: xt the 4 rows transposed, sums the 4 sums of
    the tree's output) with their leaf tables, and the entries of the driver's table, ``{vtree_K, target}``.

    ``trees`` are the nodes of each tree (compile/treelite_fields.py), ``targets`` the output each one adds to,
    ``condition`` the scalar test of compile/tree_codegen.py (C true when a row goes left)."""
    functions, entries = [], []
    for index, (tree, target) in enumerate(zip(trees, targets, strict=True)):
        nodes = {int(node["node_id"]): node for node in tree}
        under = leaves_under(nodes)
        order = under[0]
        if len(order) > MAX_LEAVES:
            raise CompileError(f"tree {index} has {len(order)} leaves; the AVX2 path holds {MAX_LEAVES}")
        if target < 0 or any(isinstance(nodes[leaf]["leaf_value"], list) for leaf in order):
            raise CompileError(f"tree {index}: the AVX2 path takes trees of one value per leaf")
        bit = {leaf: k for k, leaf in enumerate(order)}
        values = ", ".join(c_double(nodes[leaf]["leaf_value"]) for leaf in order)
        lines = [
            f"static const double vleaves_{index}[{len(order)}] = {{{values}}};",
            f"static void vtree_{index}(const double *restrict xt, double *restrict sums) {{",
            "  __m256i m = _mm256_set1_epi64x(-1);",
            "  uint64_t masks[4];",
            "  int r;",
        ]
        for node in nodes.values():
            if "leaf_value" in node:
                continue
            left = sum(1 << bit[leaf] for leaf in under[int(node["left_child"])])
            mask = f"_mm256_set1_epi64x((long long){left}ull)"
            lines.append(f"  m = _mm256_andnot_si256(_mm256_and_si256({_go_right(node, condition)}, {mask}), m);")
        lines += [
            "  _mm256_storeu_si256((__m256i *)masks, m);",
            f"  for (r = 0; r < 4; ++r) sums[r] += vleaves_{index}[__builtin_ctzll(masks[r])];",
            "}",
            "",
        ]
        functions.append("\n".join(lines))
        entries.append(f"{{vtree_{index}, {target}}}")
    return "\n".join(functions), ",\n  ".join(entries)
