"""The exported edge C tree for every model family: it scores as Bundle.predict, builds with gcc and clang at -O2
and -Os with warnings as errors, with CMake, runs as the example program, and survives libFuzzer under ASan and
UBSan."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from compile.edge import make
from compile.errors import CompileError
from engine.bundle.edge import build_edge, export_bundle_c
from engine.bundle.format import Bundle, TaskModel
from engine.data.loading import load_telemetry, write_kaggle_csv
from engine.data.schema import FAILURE_TYPES
from engine.data.synthetic import generate
from engine.features.batch import compute_features
from engine.models.cross_validation import fit_model
from engine.models.tasks import TASKS, inputs_and_targets
from engine.models.zoo import candidates
from engine.stream.scorer import StreamScorer
from tests.oracles.scores import assert_scores_close
from tests.oracles.ulp import TOLERANCE, assert_features_agree
from tests.samples import telemetry_arrays

__all__ = [
    "TABULAR_FAMILIES",
    "TREE_FAMILIES",
    "example_program",
    "small_bundles",
    "test_cmake_builds_the_static_and_shared_library",
    "test_every_model_family_scores_as_bundle_predict",
    "test_example_program_matches_bundle_predict",
    "test_example_program_reports_late_and_bad_rows",
    "test_exported_tree_builds_with_warnings_as_errors",
    "test_fuzz_iot_score_and_the_csv_reader_under_asan_and_ubsan",
    "test_uint8_needs_lightgbm_models",
]


def _small_bundle(folder: Path, families: dict[str, str]) -> Bundle:
    """A bundle of small models of the given families (and a LightGBM set), trained on 3k kaggle rows."""
    X, y = inputs_and_targets(generate(3_000, seed=31))
    chosen, lightgbm_set = {}, {}
    for task in TASKS:
        zoo = candidates(task.kind)
        for family in {families[task.name], "lightgbm"}:
            candidate = zoo[family]
            estimator = clone(candidate.estimator)
            if "n_estimators" in estimator.get_params():
                estimator.set_params(n_estimators=12)
            if "max_iter" in estimator.get_params() and family == "hist_gradient_boosting":
                estimator.set_params(max_iter=12)
            candidate = type(candidate)(estimator, candidate.fit_params)
            threshold = 0.4 if task.kind == "binary" else None
            model = TaskModel(task.name, family, fit_model(candidate, X, y[task.name]), threshold=threshold)
            if family == families[task.name]:
                chosen[task.name] = model
            if family == "lightgbm":
                lightgbm_set[task.name] = model
    return Bundle.write(folder, chosen, sets={"lightgbm": lightgbm_set})


# extra trees are in the shared compiled bundle (conftest.CHOSEN); HistGradientBoosting here in all three kinds
TREE_FAMILIES = {
    "anomaly_flag": "lightgbm",
    "maintenance_required": "random_forest",
    "downtime_risk": "hist_gradient_boosting",
    "failure_type": "hist_gradient_boosting",
    "predicted_remaining_life": "hist_gradient_boosting",
}


TABULAR_FAMILIES = {
    "anomaly_flag": "logistic_regression",
    "maintenance_required": "gaussian_nb",
    "downtime_risk": "logistic_regression",
    "failure_type": "gaussian_nb",
    "predicted_remaining_life": "ridge",
}


@pytest.fixture(scope="module")
def small_bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("edge_bundles")
    return {
        "trees": _small_bundle(root / "trees", TREE_FAMILIES),
        "tabular": _small_bundle(root / "tabular", TABULAR_FAMILIES),
    }


EDGE_BUILDS = [("trees", "chosen", "tl2cgen"), ("tabular", "chosen", "tl2cgen"), ("trees", "lightgbm", "uint8"),
               ("trees", "chosen", "iot")]  # fmt: skip


@pytest.mark.parametrize("kind, models, trees", EDGE_BUILDS)
def test_every_model_family_scores_as_bundle_predict(small_bundles, tmp_path, kind, models, trees):
    folder = tmp_path / "bundle"
    shutil.copytree(small_bundles[kind].path, folder)
    bundle = build_edge(folder, models=models, trees=trees, progress=lambda _: None)
    table = generate(2_000, seed=32)  # other rows than the training ones
    expected = bundle.predict(table, models=models)
    got = StreamScorer(bundle).score_batch(*telemetry_arrays(table))
    assert_scores_close(got, expected, TOLERANCE)
    assert bundle.manifest["edge"]["trees"] == trees


def test_uint8_needs_lightgbm_models(small_bundles, tmp_path):
    with pytest.raises(CompileError, match="uint8 tree form exists for LightGBM models; the chosen model is random"):
        export_bundle_c(small_bundles["trees"], tmp_path / "c", trees="uint8", progress=lambda _: None)


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
@pytest.mark.parametrize("opt", ["-O2", "-Os"])
@pytest.mark.parametrize("kind, trees", [("trees", "tl2cgen"), ("tabular", "tl2cgen"), ("trees", "iot")])
def test_exported_tree_builds_with_warnings_as_errors(small_bundles, tmp_path, compiler, opt, kind, trees):
    assert shutil.which(compiler), f"{compiler} is needed (README: install clang)"
    tree = export_bundle_c(small_bundles[kind], tmp_path / "c", trees=trees, progress=lambda _: None)
    make(tree.directory, "all", compiler=compiler, opt=opt)  # -Wall -Wextra -Werror -pedantic -std=c99
    for name in ("libiotengine.a", "libiotengine.so", "iotengine_example"):
        assert (tree.directory / name).stat().st_size > 0
    # no allocation and no mutable globals: built as position-dependent code (where a table of string pointers is
    # plain read-only data, not relocated data), the library objects define no writable data and call no allocator
    for source in tree.library_sources:
        obj = tmp_path / (Path(source).stem + ".nopic.o")
        flags = ["-std=c99", opt, "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffp-contract=off", "-fno-pic"]
        subprocess.run([compiler, *flags, "-c", str(tree.directory / source), "-o", str(obj)], check=True)
        symbols = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout.split("\n")
        kinds = {line.split()[-2] for line in symbols if len(line.split()) >= 2}
        assert not kinds & set("dDbBcC"), f"{source}: writable data {kinds}"
        undefined = {line.split()[-1] for line in symbols if line.split()[:1] == ["U"]}
        assert not undefined & {"malloc", "calloc", "realloc", "free"}, source


def test_cmake_builds_the_static_and_shared_library(small_bundles, tmp_path, real_sample_path):
    tree = export_bundle_c(small_bundles["trees"], tmp_path / "c", progress=lambda _: None)
    build = tmp_path / "build"
    subprocess.run(["cmake", "-S", str(tree.directory), "-B", str(build)], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "-j2"], check=True, capture_output=True)
    assert (build / "libiotengine.a").stat().st_size > 0 and (build / "libiotengine.so").stat().st_size > 0
    with real_sample_path.open() as stdin:
        done = subprocess.run([str(build / "iotengine_example")], stdin=stdin, capture_output=True, text=True)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 2232


def _run_example(directory: Path, csv_text: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(directory / "iotengine_example"), *args], input=csv_text, capture_output=True, text=True)


@pytest.fixture(scope="module")
def example_program(compiled, tmp_path_factory) -> Path:
    """The example program built from the sources the bundle's edge library was built from."""
    source = tmp_path_factory.mktemp("example") / "src"
    shutil.copytree(compiled[0].path / "edge" / "src", source)
    make(source, "iotengine_example")
    return source


def test_example_program_matches_bundle_predict(compiled, example_program, real_sample_path):
    bundle, _, _ = compiled
    source = example_program
    text = real_sample_path.read_text()
    done = _run_example(source, text)
    assert done.returncode == 0, done.stderr
    got = pd.read_csv(io.StringIO(done.stdout))
    expected = bundle.predict(real_sample_path)
    assert (got["code"] == "ok").all() and len(got) == 2231
    for column, task in (("anomaly", "anomaly_flag"), ("maintenance", "maintenance_required"),
                         ("downtime", "downtime_risk"), ("remaining_life", "predicted_remaining_life"),
                         ("unsupervised", "unsupervised_anomaly")):  # fmt: skip
        assert np.max(np.abs(got[column].to_numpy() - expected[task])) <= TOLERANCE, column
    proba = got[[f"p_{name}" for name in FAILURE_TYPES]].to_numpy()
    assert np.max(np.abs(proba - expected["failure_type_proba"])) <= TOLERANCE
    assert (got["failure_type"].to_numpy() == expected["failure_type"]).all()
    # --features prints the 67 features, %.17g round-trips: the same doubles as the Numba kernel
    done = _run_example(source, text, "--features")
    features = pd.read_csv(io.StringIO(done.stdout)).iloc[:, 3:].to_numpy()
    assert_features_agree(features, compute_features(real_sample_path))


def test_example_program_reports_late_and_bad_rows(example_program, tmp_path):
    source = example_program
    csv_path = write_kaggle_csv(generate(6, seed=1), tmp_path / "six.csv")
    lines = csv_path.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    machine = rows[0].split(",")[1]
    late = rows[0].replace(rows[0][:19], "2024-12-31 23:00:00")  # same machine, an earlier time
    bad_value = rows[1].split(",")
    bad_value[header.split(",").index("vibration")] = "fast"
    bad_status = rows[2].split(",")
    bad_status[header.split(",").index("machine_status")] = "7"
    text = "\n".join([header, rows[0], late, ",".join(bad_value), ",".join(bad_status), "2025-13-01,1,2"]) + "\n"
    done = _run_example(source, text)
    assert done.returncode == 1
    out = done.stdout.splitlines()
    assert out[1].split(",")[2] == "ok" and out[2] == f"{machine},{out[2].split(',')[1]},late"
    assert 'line 4: vibration: bad value "fast"' in done.stderr
    assert "line 5: rejected by the library (machine_status 7 outside 0..2?)" in done.stderr
    assert "line 6: expected 13 columns" in done.stderr
    missing = _run_example(source, "timestamp,machine_id,temperature\n")
    assert missing.returncode == 2 and "header has no column" in missing.stderr


def test_fuzz_iot_score_and_the_csv_reader_under_asan_and_ubsan(small_bundles, tmp_path, real_sample_path):
    assert shutil.which("clang"), "clang with libFuzzer is needed (README: install clang libclang-rt-14-dev)"
    tree = export_bundle_c(small_bundles["trees"], tmp_path / "c", progress=lambda _: None)
    fuzzer = tmp_path / "fuzz_iot"
    sources = [str(tree.directory / name) for name in (*tree.library_sources, "iot_csv.c", "fuzz_iot.c")]
    flags = ["-std=c99", "-g", "-O1", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror"]
    sanitize = ["-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all"]
    subprocess.run(["clang", *flags, *sanitize, *sources, "-o", str(fuzzer), "-lm"], check=True)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "csv").write_bytes(b"\x00" + real_sample_path.read_bytes()[:3000])
    rng = np.random.default_rng(0)
    (corpus / "binary").write_bytes(b"\x01" + rng.bytes(4 + 53 * 40))
    done = subprocess.run(
        # -rss_limit_mb=0: Linux carries the peak RSS of the forking process (pytest, over 2 GB after the other
        # tests) into the exec'd fuzzer's getrusage, which libFuzzer would read as its own and stop with
        # "out-of-memory" on an empty input. The library allocates nothing; a 256 MB malloc limit stays.
        [
            str(fuzzer),
            str(corpus),
            "-runs=30000",
            "-seed=1",
            "-max_len=4096",
            "-timeout=20",
            "-rss_limit_mb=0",
            "-malloc_limit_mb=256",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Done 30000 runs" in done.stderr
    assert "ERROR: AddressSanitizer" not in done.stderr and "runtime error" not in done.stderr


def test_example_program_reads_what_the_python_loader_reads(compiled, example_program, tmp_path):
    """A UTF-8 byte order mark and quoted fields (as spreadsheets write them) are the same telemetry."""
    csv_path = write_kaggle_csv(generate(20, seed=3), tmp_path / "plain.csv")
    plain = csv_path.read_text()
    lines = plain.splitlines()
    quoted = [",".join(f'"{field}"' for field in line.split(",")) for line in lines]
    odd = "\ufeff" + "\n".join(quoted) + "\n"
    (tmp_path / "odd.csv").write_text(odd, encoding="utf-8")
    expected = compiled[0].predict(load_telemetry(tmp_path / "odd.csv"))
    done = subprocess.run(
        [str(example_program / "iotengine_example")], input=odd.encode(), capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr
    got = pd.read_csv(io.BytesIO(done.stdout))
    assert (got["code"] == "ok").all() and len(got) == 20
    assert np.max(np.abs(got["anomaly"].to_numpy() - expected["anomaly_flag"])) <= TOLERANCE
    assert _run_example(example_program, plain).stdout == done.stdout.decode()
