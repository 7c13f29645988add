"""iotengine's own C code generator for tree ensembles, beside tl2cgen: the same treelite model in, C99 out.

:func:`forest_core` reads a model through treelite's field accessors (:mod:`compile.treelite_fields`; LightGBM
binary, multiclass and regression with categorical splits and missing values; scikit-learn's random forests and
extra trees, averaged; HistGradientBoosting as :func:`compile.sklearn_trees.import_sklearn_trees` imports it) and
fills in compile/c/iot_forest_core.c.in: the trees as static C. :func:`forest_source` wraps them into a shared
library (compile/c/iot_forest.c.in: tl2cgen's ABI, so :class:`compile.binding.NativeModel` loads it, plus a single
row entry and threads), :func:`build_forest_library` compiles it; compile/edge_models.py puts the same core into
the edge library.

What differs from tl2cgen's code (compile/tl2cgen_source.py rewrites tl2cgen's output towards some of it):

- each node is one comparison on the row's own double: missing (NaN) follows the node's default direction by
  the choice of comparison, so no row is copied and no missing flag is tested;
- thresholds and leaf values are hex-float literals, the exact bits treelite holds;
- categorical splits test a bitset of any width (tl2cgen's masks stop at 64 categories);
- subtrees of at most FLAT_LEAVES leaves are branch-free, and blocks of TREES_PER_BLOCK trees run over every
  row of a batch before the next block (the branch predictor, not the instruction cache, bounds big models);
- ``isa="avx2"`` adds a second path, the bitmask form of :mod:`compile.tree_bitmask` over 4 rows per vector,
  taken at run time when the CPU has AVX2 (the same bits; 1.5-2.9x slower than the branches on the benchmark's
  model shapes: ``python scripts/measure_bitmask_trees.py``).

The sums are the framework's bit for bit: within a row the trees add their leaves in model order, then come
the averaging of forests, base scores and transforms (tests/compile/test_tree_codegen.py compares with LightGBM
and scikit-learn for equality).

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
from compile.tree_bitmask import vector_trees
from compile.treelite_fields import leaves_under, model_header, tree_nodes

__all__ = [
    "FLAT_LEAVES",
    "ISAS",
    "TREES_PER_BLOCK",
    "build_forest_library",
    "compile_forest_source",
    "forest_core",
    "forest_source",
]

# Trees per block function. A block runs over all the rows before the next (iot_forest.c.in); a row's sums stay in
# registers through it. 16 to 34 measured alike on the benchmark's 100- and 500-tree models; beyond 64, slower.
TREES_PER_BLOCK = 24
# Subtrees of at most this many leaves are computed without branches: all their tests, then a table lookup.
# 3 measured 2-5% faster than 2 (a node with two leaves) on the 500-tree models; 6 and more, slower.
FLAT_LEAVES = 3
ISAS = ("portable", "avx2")  # the scalar C99 path alone, or with the AVX2 path of compile/tree_bitmask.py
_POSTPROCESSORS = {"identity": 0, "identity_multiclass": 0, "sigmoid": 1, "softmax": 2}
_COMPLEMENT = {"<=": ">", "<": ">=", ">=": "<", ">": "<="}


class _Emitter:
    """The C of the trees: a nested if/else per tree, the category sets they test."""

    def __init__(self, n_outputs: int):
        self.n_outputs = n_outputs
        self.sets: dict[tuple[int, ...], str] = {}
        self.tables: list[str] = []

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

    def leaf_values(self, node: dict) -> list[float]:
        value = node["leaf_value"]
        values = value if isinstance(value, list) else [value]
        if len(values) not in (1, self.n_outputs):
            raise CompileError(f"a leaf holds {len(values)} values for {self.n_outputs} outputs")
        return values

    def stores(self, values: list[float], indent: str) -> list[str]:
        if len(values) == 1:
            return [f"{indent}return {c_double(values[0])};"]
        return [f"{indent}v[{k}] = {c_double(value)};" for k, value in enumerate(values)] + [f"{indent}return 0.0;"]

    def tree(self, tree: dict, name: str) -> tuple[str, int]:
        """The C function of one tree (one row: its leaf value, or a forest's values into ``v``), and how many
        values its leaves hold."""
        nodes = {int(node["node_id"]): node for node in tree["nodes"]}
        widths = {len(self.leaf_values(n)) for n in nodes.values() if "leaf_value" in n}
        if len(widths) != 1:
            raise CompileError(f"{name}: its leaves hold different numbers of values {sorted(widths)}")
        lines: list[str] = []
        under = leaves_under(nodes)

        def index_of(node_id: int, offset: int) -> str:
            node = nodes[node_id]
            if "leaf_value" in node:
                return str(offset)
            left, right = int(node["left_child"]), int(node["right_child"])
            go_left = index_of(left, offset)
            go_right = index_of(right, offset + len(under[left]))
            if go_left.isdigit() and go_right.isdigit() and int(go_right) == int(go_left) + 1:
                return f"{go_right} - ({self.condition(node)})"
            return f"(((-(int)({self.condition(node)})) & (({go_left}) ^ ({go_right}))) ^ ({go_right}))"

        def emit(node_id: int, depth: int) -> None:
            node, indent = nodes[node_id], "  " * depth
            if "leaf_value" in node:
                lines.extend(self.stores(self.leaf_values(node), indent))
                return
            leaves = under[node_id]
            if len(leaves) <= FLAT_LEAVES:
                # A small subtree: every test is evaluated and the leaf index computed without a branch.
                table = f"{name}_{node_id}"
                width = len(self.leaf_values(nodes[leaves[0]]))
                values = ", ".join(c_double(v) for leaf in leaves for v in self.leaf_values(nodes[leaf]))
                self.tables.append(f"static const double {table}[{width * len(leaves)}] = {{{values}}};")
                index = f"({index_of(node_id, 0)}) * {width}"
                if width == 1:
                    lines.append(f"{indent}return {table}[{index}];")
                else:
                    lines.append(f"{indent}{{\n{indent}  const double *p = {table} + {index};")
                    lines.extend(f"{indent}  v[{k}] = p[{k}];" for k in range(width))
                    lines.append(f"{indent}}}\n{indent}return 0.0;")
                return
            lines.append(f"{indent}if ({self.condition(node)}) {{")
            emit(int(node["left_child"]), depth + 1)
            lines.append(f"{indent}}} else {{")
            emit(int(node["right_child"]), depth + 1)
            lines.append(f"{indent}}}")

        emit(0, 1)
        head = f"static inline double {name}(const double *restrict x, double *restrict v) {{"
        return "\n".join([head, "  (void)x;", "  (void)v;", *lines, "}", ""]), widths.pop()


def forest_source(
    model: treelite.Model, *, round_float32: bool, trees_per_block: int = TREES_PER_BLOCK, isa: str = "portable"
) -> str:
    """The C99 source of ``model``'s shared library (compile/c/iot_forest.c.in around :func:`forest_core`).

    ``round_float32`` rounds every input to float32 before the trees, as scikit-learn's forests compare. A forest
    gives scikit-learn's probabilities bit for bit when imported by :func:`compile.sklearn_trees.import_sklearn_trees`.
    """
    core, _ = forest_core(model, round_float32=round_float32, trees_per_block=trees_per_block, isa=isa)
    return fill("iot_forest.c.in", CORE=core)


def forest_core(
    model: treelite.Model, *, round_float32: bool, trees_per_block: int = TREES_PER_BLOCK, isa: str = "portable"
) -> tuple[str, int]:
    """The static C of ``model``'s trees (compile/c/iot_forest_core.c.in filled in: ``predict_rows``, the macros
    N_FEATURES and N_OUTPUTS), and its number of outputs.

    ``isa="avx2"`` adds the AVX2 bitmask path of :mod:`compile.tree_bitmask` (built with ``-mavx2``, taken at run
    time when the CPU has AVX2, the same bits as the portable path); models it does not cover raise CompileError."""
    if isa not in ISAS:
        raise CompileError(f"isa must be one of {ISAS}, not {isa!r}")
    document = model_header(model)
    if int(document["num_target"][0]) != 1:
        raise CompileError(f"models with {int(document['num_target'][0])} targets are not supported (one only)")
    postprocessor = document["postprocessor"]
    if postprocessor not in _POSTPROCESSORS:
        raise CompileError(f"output transform {postprocessor!r} is not one of {sorted(_POSTPROCESSORS)}")
    n_outputs = int(document["num_class"][0])
    trees = [{"nodes": tree_nodes(model, k)} for k in range(int(model.num_tree))]
    class_ids = [int(c) for c in document["class_id"]]
    emitter = _Emitter(n_outputs)
    counts = [0] * n_outputs
    functions, entries = [], []
    for index, (tree, class_id) in enumerate(zip(trees, class_ids, strict=True)):
        function, width = emitter.tree(tree, f"tree_{index}")
        if width not in (1, n_outputs):
            raise CompileError(f"tree {index}: {width} values per leaf for {n_outputs} outputs")
        target = max(class_id, 0) if width == 1 else -1
        functions.append(function)
        entries.append((index, target))
        for k in range(n_outputs) if target < 0 else (target,):
            counts[k] += 1
    blocks, names = [], []
    for start in range(0, len(entries), trees_per_block):
        chunk = entries[start : start + trees_per_block]
        used = sorted({k for _, target in chunk for k in (range(n_outputs) if target < 0 else (target,))})
        body = [f"  double s{k} = y[{k}];" for k in used]
        body.append("  double v[N_OUTPUTS];")
        for index, target in chunk:
            if target >= 0:
                body.append(f"  s{target} += tree_{index}(x, v);")
            else:
                body.append(f"  (void)tree_{index}(x, v);")
                body.extend(f"  s{k} += v[{k}];" for k in range(n_outputs))
        body.extend(f"  y[{k}] = s{k};" for k in used)
        name = f"trees_{start // trees_per_block}"
        names.append(name)
        head = f"static void {name}(const double *restrict x, double *restrict y) {{"
        blocks.append("\n".join([head, *body, "}", ""]))
    vector_code, vector_table = "", ""
    if isa == "avx2":
        if round_float32:
            raise CompileError("the AVX2 path does not round inputs to float32 (scikit-learn's forests)")
        nodes = [tree["nodes"] for tree in trees]
        vector_code, vector_table = vector_trees(nodes, [target for _, target in entries], emitter.condition)
    base_scores = [float(v) for v in document["base_scores"]]
    if len(base_scores) != n_outputs:
        raise CompileError(f"{len(base_scores)} base scores for {n_outputs} outputs")
    core = fill(
        "iot_forest_core.c.in",
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
        LEAF_TABLES="\n".join(emitter.tables),
        TREE_FUNCTIONS="\n".join(functions),
        TREE_BLOCKS="\n".join(blocks),
        BLOCK_NAMES=", ".join(names),
        AVX2=int(isa == "avx2"),
        VECTOR_TREES=vector_code,
        VECTOR_TABLE=vector_table,
    )
    return core, n_outputs


def build_forest_library(
    model: treelite.Model,
    output: str | os.PathLike,
    *,
    round_float32: bool,
    compiler: str = "gcc",
    cflags: tuple[str, ...] = CFLAGS,
    isa: str = "portable",
) -> Path:
    """Generate ``model``'s C with :func:`forest_source` and compile it into the shared library ``output``."""
    source = forest_source(model, round_float32=round_float32, isa=isa)
    return compile_forest_source(source, output, compiler, cflags, isa=isa)


def compile_forest_source(
    source: str,
    output: str | os.PathLike,
    compiler: str = "gcc",
    cflags: tuple[str, ...] = CFLAGS,
    *,
    isa: str = "portable",
) -> Path:
    """Compile the C of :func:`forest_source` into the shared library ``output`` (``isa`` as the source was made:
    "avx2" compiles with -mavx2, which enables no FMA; -ffp-contract=off keeps every sum as written)."""
    if isa not in ISAS:
        raise CompileError(f"isa must be one of {ISAS}, not {isa!r}")
    cflags = (*cflags, "-mavx2") if isa == "avx2" else cflags
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "iot_forest.c").write_text(source)
        # Stripped: a static function per tree and per block fills a symbol table as large as a sixth of the code.
        sources = NativeSources(Path(work), ("iot_forest.c",), ())
        return build_library(sources, output, compiler=compiler, cflags=cflags, strip=True)
