"""The model benchmark suite in quick mode: every runtime and figure present, sizes real, exact runtimes exact.

No timing is asserted (shared, noisy machines); the uint8 trees are checked against LightGBM for equality.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.report import write_report
from bench.suite import LARGE_MODEL, RUNTIMES, THREADS
from compile.binding import NativeModel
from compile.native import build_library
from compile.tl2cgen_source import NativeSources
from compile.uint8_trees import uint8_source
from engine.models.tasks import TASKS
from kernels.names import SENSORS
from tests.oracles.scores import assert_equals_lightgbm
from tests.small_models import on_thresholds, random_lightgbm

REQUIRED = ("model", "runtime", "batch", "threads", "median_ns_per_row", "p99_ns_per_row", "size_bytes", "max_abs_diff")


@pytest.fixture(scope="module")
def quick_run(main_job, tmp_path_factory):
    """The quick suite the main job ran (bench.suite.run_suite, quick=True, on its bundle), and its report
    written again here from results.json."""
    _, artifacts = main_job
    out = tmp_path_factory.mktemp("bench")
    shutil.copyfile(artifacts / "bench" / "results.json", out / "results.json")
    document = json.loads((out / "results.json").read_text())
    return document, write_report(document, out), out


def test_results_have_every_model_runtime_and_batch(quick_run):
    document, _, out = quick_run
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(document))
    models = {task.name for task in TASKS} | {LARGE_MODEL} | {f"unsupervised_{sensor}" for sensor in SENSORS}
    runtimes = set(RUNTIMES) - set(document["unavailable"])
    for name, reason in document["unavailable"].items():
        print(f"{name} unavailable: {reason}")
        assert name == "lleaves" and reason  # only the optional peer may be missing, and it says why
    cells = {(r["model"], r["runtime"], r["batch"], r["threads"]) for r in document["records"]}
    batches = (1, 1_000, 10_000)  # the largest batch is 10,000 distinct rows in quick mode too
    threaded = {(m, "iot", b, THREADS) for m in models for b in batches[1:]}
    assert cells == {(m, r, b, 1) for m in models for r in runtimes for b in batches} | threaded
    for record in document["records"]:
        assert all(key in record for key in REQUIRED), record
        assert record["size_bytes"] > 0, record
        if record.get("skipped") is None:
            assert record["median_ns_per_row"] > 0 and record["p99_ns_per_row"] >= record["median_ns_per_row"]


def test_exact_runtimes_are_exact_and_int8_is_not(quick_run):
    document, _, _ = quick_run
    for record in document["records"]:
        if record["runtime"] in ("lightgbm", "iot", "iot-c", "native", "native-c", "uint8", "uint8-c"):
            assert record["max_abs_diff"] == 0.0, record
        if record["runtime"] == "lleaves":
            assert record["max_abs_diff"] < 1e-9, record
        if record["runtime"] == "onnx-int8":
            assert record["max_abs_diff"] > 0.0, record


def test_sizes_cover_every_artifact_and_uint8_is_smallest_exact_form(quick_run):
    document, _, _ = quick_run
    for sizes in document["sizes"]:
        for key in ("lightgbm_text", "tl2cgen_so", "tl2cgen_so_stripped", "tl2cgen_c_sources", "uint8_so",
                    "uint8_c_source", "iot_so", "iot_so_stripped", "iot_c_source", "onnx_fp32", "onnx_int8",
                    "onnx_gemm_fp32"):  # fmt: skip
            assert sizes[key] > 0, (sizes["model"], key)
        assert sizes["uint8_so"] < sizes["tl2cgen_so"], sizes
        assert sizes["onnx_int8"] < sizes["onnx_gemm_fp32"], sizes


def test_report_files_and_end_to_end(quick_run):
    document, files, out = quick_run
    names = {p.name for p in files}
    expected = {"BENCH.md", "records.csv", "sizes.csv", "winners.png", "throughput.png", "sizes.png"}
    expected.add("latency_batch1.png")
    assert expected <= names
    for path in files:
        assert path.stat().st_size > 0, path
    report = (out / "BENCH.md").read_text()
    assert "## Goals" in report and LARGE_MODEL in report
    # BENCH.md opens with who wins, a table per model, and its chart
    assert report.index("## Who wins") < report.index("## Latency at batch 1") < report.index("## Goals")
    for name in models_of(document):
        assert f"**{name}**" in report
    e2e = document["end_to_end"]
    assert e2e["samples"] > 500 and e2e["features_and_five_tasks_median_ns"] > e2e["features_median_ns"] > 0


def test_the_unsupervised_detector_is_the_sum_of_its_five_regressors(quick_run):
    document, _, out = quick_run
    records = {(r["model"], r["runtime"], r["batch"]): r for r in document["records"] if r["threads"] == 1}
    runtimes = set(RUNTIMES) - set(document["unavailable"])
    totals = {(d["runtime"], d["batch"]): d for d in document["unsupervised"]}
    assert {runtime for runtime, _ in totals} == runtimes
    for (runtime, batch), total in totals.items():
        parts = [records[f"unsupervised_{sensor}", runtime, batch] for sensor in SENSORS]
        assert total["regressors"] == 5
        assert total["median_ns_per_row"] == pytest.approx(sum(p["median_ns_per_row"] for p in parts), abs=0.5)
        assert total["size_bytes"] == sum(p["size_bytes"] for p in parts)
        assert total["max_abs_diff"] == max(p["max_abs_diff"] for p in parts)
    assert "## The unsupervised detector (five regressors together)" in (out / "BENCH.md").read_text()


@given(
    seed=st.integers(0, 2**31 - 1),
    objective=st.sampled_from(["binary", "multiclass", "regression"]),
    leaves=st.integers(2, 31),
    rounds=st.integers(1, 30),
)
def test_uint8_trees_equal_lightgbm_exactly(tmp_path_factory, seed, objective, leaves, rounds):
    """Bin codes reproduce LightGBM bit for bit: through categorical splits, NaN in features that had NaN in
    training and in features that had none, values equal to thresholds, and single-leaf trees."""
    booster, test = random_lightgbm(np.random.default_rng(seed), objective, leaves, rounds, on_thresholds)
    folder = tmp_path_factory.mktemp("uint8")
    (folder / "m.c").write_text(uint8_source(booster))
    library = build_library(NativeSources(folder, ("m.c",), ()), folder / "m.so")
    model = NativeModel(library, hashlib.sha256(library.read_bytes()).hexdigest(), objective)
    assert_equals_lightgbm(model, booster, test)


def test_uint8_trees_index_hundreds_of_categorical_splits(tmp_path):
    # A node stores its category set as one byte: 500 trees that split on machine_status hold hundreds of
    # categorical splits, but few distinct category sets, which must be shared, not wrapped around at 256.
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3_000, 3))
    X[:, 2] = rng.integers(0, 5, size=3_000)
    y = np.array([0.0, 10.0, -5.0, 3.0, -8.0])[X[:, 2].astype(int)] + 0.1 * rng.normal(size=3_000)
    params = {"objective": "regression", "num_leaves": 4, "learning_rate": 0.01, "min_data_per_group": 5, "verbose": -1}
    params["num_threads"] = 1
    booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=[2]), 500)
    categorical = sum(
        1 for info in booster.dump_model()["tree_info"] for node in _nodes(info["tree_structure"])
        if node.get("decision_type") == "=="
    )  # fmt: skip
    assert categorical > 256
    (tmp_path / "m.c").write_text(uint8_source(booster))
    library = build_library(NativeSources(tmp_path, ("m.c",), ()), tmp_path / "m.so")
    model = NativeModel(library, hashlib.sha256(library.read_bytes()).hexdigest(), "regression")
    assert np.array_equal(model.predict(X), booster.predict(X))


def _nodes(node):
    yield node
    if "left_child" in node:
        yield from _nodes(node["left_child"])
        yield from _nodes(node["right_child"])


def test_lleaves_cache_survives_two_runs_compiling_one_model_at_once(tmp_path):
    # Two tasks with the same labels give identical models; their lleaves runs once raced on one cache file and
    # one of them loaded half of it. Now each compiles under a name of its own and renames it into place.
    import subprocess

    from bench.lleaves_env import RUNNER, lleaves_python

    python, reason = lleaves_python()
    assert python is not None, reason
    rng = np.random.default_rng(11)
    X = rng.normal(size=(400, 4))
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "seed": int(rng.integers(1 << 30))},
        lgb.Dataset(X, (X[:, 0] + X[:, 1] > 0).astype(int)),
        60,
    )
    booster.save_model(str(tmp_path / "model.txt"))
    np.save(tmp_path / "inputs.npy", X)
    options = ["--cache-dir", str(tmp_path / "cache"), "--batches", "1", "--repeats", "1", "--single-rows", "5"]
    model, inputs = str(tmp_path / "model.txt"), str(tmp_path / "inputs.npy")
    runs = [
        subprocess.Popen(
            [str(python), str(RUNNER), model, inputs, str(tmp_path / f"out{k}"), *options],
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(2)
    ]
    assert [run.wait(timeout=600) for run in runs] == [0, 0], [run.stderr.read()[-2000:] for run in runs]
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".so"]  # one object, no partial file left
    for k in range(2):
        assert np.abs(np.load(tmp_path / f"out{k}" / "predictions.npy") - booster.predict(X)).max() < 1e-12


def models_of(document: dict) -> list[str]:
    return sorted({r["model"] for r in document["records"]})
