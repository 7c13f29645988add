"""Why compile/tree_codegen.py branches: the bitmask (QuickScorer) form of the same trees, vectorised across 8 rows
with AVX-512, against iotengine's branching code, both from the C driver of the benchmarks on 10,000 distinct fleet
rows, one thread.

    python scripts/measure_bitmask_trees.py

Two binary LightGBM models of the benchmark's shapes (100 trees of 31 leaves; 500 trees of 63 leaves), trained on
generated fleet data with every column numeric (the bitmask form here has no categorical test). The bitmask form
evaluates every node of every tree for every row, without a branch; the branching code evaluates one path per
tree and pays for the branches the predictor misses. The last column is what the branches cost: the branching
code on 10 of the rows, each repeated 1,000 times in a row, where the predictor misses almost nothing. Needs a
CPU with AVX-512F; prints a table.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import lightgbm as lgb
import numpy as np

from bench.suite import DRIVER_SOURCE, LARGE_PARAMS
from compile.native import treelite_model
from compile.templates import c_double, fill_text
from compile.tree_codegen import compile_forest_source, forest_source
from compile.treelite_fields import tree_nodes
from engine.data.synthetic import FLEET_INTERVAL_S, generate
from engine.models.tasks import inputs_and_targets

TEMPLATE = Path(__file__).parent / "c" / "bitmask_forest.c.in"
SHAPES = {"100 x 31 leaves": (100, 31), "500 x 63 leaves": (500, 63)}


def bitmask_source(model) -> str:
    """The C of the bitmask form (scripts/c/bitmask_forest.c.in filled in) of a model without categorical splits."""
    functions, tables = [], []
    for t in range(int(model.num_tree)):
        nodes = {node["node_id"]: node for node in tree_nodes(model, t)}
        leaves: dict[int, list[int]] = {}

        order = _leaves_under(nodes, 0, leaves)
        if len(order) > 64:
            raise SystemExit(f"tree {t} has {len(order)} leaves; the bitmask form holds 64")
        bit = {leaf: k for k, leaf in enumerate(order)}
        lines = [f"static void tree_{t}(const double *x, double *sums) {{", "  __m512i m = _mm512_set1_epi64(-1);"]
        lines += ["  __mmask8 right;", "  uint64_t masks[8];", "  int r;"]
        for node in nodes.values():
            if "leaf_value" in node:
                continue
            if node["node_type"] != "numerical_test_node" or node["comparison_op"] != "<=":
                raise SystemExit(f"tree {t}: only numerical <= splits have a bitmask form here")
            keep = ((1 << 64) - 1) & ~sum(1 << bit[leaf] for leaf in leaves[node["left_child"]])
            # Right where x > t; NaN goes right unless the node sends it left (every ordered compare is false).
            compare = "_CMP_GT_OQ" if node["default_left"] else "_CMP_NLE_UQ"
            feature, threshold = node["split_feature_id"], c_double(node["threshold"])
            lines.append(f"  right = _mm512_cmp_pd_mask(_mm512_load_pd(x + {8 * feature}), "
                         f"_mm512_set1_pd({threshold}), {compare});")  # fmt: skip
            lines.append(f"  m = _mm512_mask_and_epi64(m, right, m, _mm512_set1_epi64((long long){keep}ull));")
        lines += ["  _mm512_storeu_si512((void *)masks, m);"]
        lines += [f"  for (r = 0; r < 8; ++r) sums[r] += leaves_{t}[__builtin_ctzll(masks[r])];", "}"]
        functions.append("\n".join(lines))
        values = ", ".join(c_double(nodes[leaf]["leaf_value"]) for leaf in order)
        tables.append(f"static const double leaves_{t}[{len(order)}] = {{{values}}};")
    return fill_text(
        TEMPLATE.read_text(),
        str(TEMPLATE),
        N_FEATURES=int(model.num_feature),
        N_TREES=int(model.num_tree),
        LEAF_TABLES="\n".join(tables),
        TREE_FUNCTIONS="\n\n".join(functions),
        TREE_NAMES=", ".join(f"tree_{t}" for t in range(int(model.num_tree))),
    )


def _leaves_under(nodes: dict, node_id: int, leaves: dict[int, list[int]]) -> list[int]:
    """The leaves under ``node_id``, left to right; ``leaves`` gets the list of every node on the way."""
    node = nodes[node_id]
    if "leaf_value" in node:
        found = [node_id]
    else:
        found = _leaves_under(nodes, node["left_child"], leaves) + _leaves_under(nodes, node["right_child"], leaves)
    leaves[node_id] = found
    return found


def _time(driver: Path, library: Path, inputs: Path, X: np.ndarray) -> float:
    command = [str(driver), str(library), str(inputs), str(X.shape[0]), str(X.shape[1]), str(X.shape[0]), "7"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["median_ns_per_row"]


def main() -> None:
    if "avx512f" not in Path("/proc/cpuinfo").read_text():
        raise SystemExit("this CPU has no AVX-512F")
    X, y = inputs_and_targets(generate(20_000, mode="fleet", seed=3, interval_s=FLEET_INTERVAL_S))
    test, _ = inputs_and_targets(generate(10_000, mode="fleet", seed=11, interval_s=FLEET_INTERVAL_S))
    test = np.ascontiguousarray(test)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        test.tofile(work / "inputs.f64")
        np.ascontiguousarray(np.repeat(test[:10], 1_000, axis=0)).tofile(work / "repeated.f64")
        driver = work / "driver"
        subprocess.run(["gcc", "-std=c99", "-O2", str(DRIVER_SOURCE), "-ldl", "-o", str(driver)], check=True)
        columns = ["model", "iot (branches) ns/row", "bitmask AVX-512 ns/row", "bitmask / iot", "max diff vs LightGBM"]
        columns.append("iot, predictable rows")
        print("| " + " | ".join(columns) + " |")
        print("| --- " * len(columns) + "|")
        for name, (trees, leaves) in SHAPES.items():
            params = dict(LARGE_PARAMS, num_leaves=leaves)
            booster = lgb.train(params, lgb.Dataset(X, y["anomaly_flag"], categorical_feature=[]), trees)
            model = treelite_model(booster.model_to_string().encode(), "lightgbm")
            branching = compile_forest_source(forest_source(model, round_float32=False), work / f"{trees}.iot.so")
            (work / f"{trees}.bitmask.c").write_text(bitmask_source(model))
            bitmask = work / f"{trees}.bitmask.so"
            flags = ["-std=c99", "-O2", "-mavx512f", "-fPIC", "-shared", "-ffp-contract=off"]
            subprocess.run(["gcc", *flags, str(work / f"{trees}.bitmask.c"), "-o", str(bitmask), "-lm"], check=True)
            ours = _time(driver, branching, work / "inputs.f64", test)
            theirs = _time(driver, bitmask, work / "inputs.f64", test)
            diff = _max_diff(bitmask, booster, test)
            easy = _time(driver, branching, work / "repeated.f64", test)
            print(f"| {name} | {ours:,.0f} | {theirs:,.0f} | {theirs / ours:.2f}x | {diff:.1e} | {easy:,.0f} |")


def _max_diff(library: Path, booster: lgb.Booster, X: np.ndarray) -> float:
    import hashlib

    from compile.binding import NativeModel

    model = NativeModel(library, hashlib.sha256(library.read_bytes()).hexdigest(), "binary")
    return float(np.abs(model.predict(X) - booster.predict(X)).max())


if __name__ == "__main__":
    main()
