"""The C edge library (compile/edge.py, compile/c/): features against the Numba kernel, scores against
bundle.predict, late and invalid samples, the example program, builds with gcc and clang, and a fuzz run under
ASan and UBSan.

Oracles: the Numba kernel (itself checked against pandas in test_features.py) for the features; each model's own
library (LightGBM, treelite's interpreter, numpy for linear and naive Bayes models) through ``bundle.predict`` for
the scores.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from compile.edge import make
from compile.edge_binding import IOT_EINVAL, IOT_LATE, IOT_OK, SCORES_DTYPE, EdgeLibrary
from compile.errors import CompileError
from engine.bundle.edge import build_edge, edge_library, export_bundle_c
from engine.bundle.format import Bundle, TaskModel
from engine.data.loading import load_telemetry, write_kaggle_csv
from engine.data.schema import FAILURE_TYPES, SENSORS
from engine.data.synthetic import generate
from engine.errors import InvalidInputError, LateSampleError
from engine.features.batch import compute_features
from engine.features.stream import FeatureStream
from engine.models.cross_validation import fit_model
from engine.models.tasks import TASKS, design_matrix, inputs_and_targets
from engine.models.zoo import candidates
from engine.stream.scorer import StreamScorer
from kernels.state import F_WIDTH, I_WIDTH

TOLERANCE = 1e-12
MAX_ULP = 4


def _columns(table):
    table = load_telemetry(table)
    ids = table.column("machine_id").to_numpy().astype(np.int64)
    stamps = table.column("timestamp").cast("int64").to_numpy().copy()
    values = np.column_stack([table.column(name).to_numpy() for name in SENSORS])
    return ids, stamps, values, table.column("machine_status").to_numpy().astype(np.int64)


def _ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in units in the last place between doubles (0 for equal values and for two NaNs)."""
    # Map the sign-magnitude bit patterns onto one monotonic integer line (-0.0 and +0.0 both at 0).
    ia, ib = np.ascontiguousarray(a).view(np.int64), np.ascontiguousarray(b).view(np.int64)
    ma = np.where(ia < 0, np.int64(-(2**63)) - ia, ia)
    mb = np.where(ib < 0, np.int64(-(2**63)) - ib, ib)
    same_side = (ma >= 0) == (mb >= 0)  # then the difference cannot overflow
    distance = np.where(
        same_side, np.abs(ma - mb).astype(np.float64), np.abs(ma.astype(np.float64)) + np.abs(mb.astype(np.float64))
    )
    return np.where((np.isnan(a) & np.isnan(b)) | (a == b), 0.0, distance)


def _assert_features_agree(c_out: np.ndarray, numba_out: np.ndarray) -> int:
    assert np.array_equal(np.isnan(c_out), np.isnan(numba_out)), "NaN in different places"
    ulp = _ulp_distance(c_out, numba_out)
    with np.errstate(invalid="ignore", over="ignore"):
        relative = np.abs(c_out - numba_out) / np.maximum(np.abs(numba_out), 1e-300)
    close = (ulp <= MAX_ULP) | (relative <= TOLERANCE) | np.isnan(numba_out)
    assert close.all(), f"{(~close).sum()} features differ by more than {MAX_ULP} ulp"
    return int(ulp.max())


def _fleet_with_bad_samples(rows: int, seed: int):
    """Fleet telemetry in arrival order with 1% late samples (an hour old), and NaN, inf and -0.0 sensors."""
    ids, stamps, values, statuses = _columns(generate(rows, mode="fleet", seed=seed))
    rng = np.random.default_rng(seed)
    late = rng.choice(rows, rows // 100, replace=False)
    stamps[late] -= 3600
    cells = rng.random(values.shape)
    values[cells < 0.004] = np.nan
    values[(cells >= 0.004) & (cells < 0.005)] = np.inf
    values[(cells >= 0.005) & (cells < 0.006)] = -np.inf
    values[(cells >= 0.006) & (cells < 0.007)] = -0.0
    return ids, stamps, values, statuses


def _c_features(library: EdgeLibrary, ids, stamps, values, offset_minutes=0):
    """The C features of every sample in arrival order, one iot_features call each."""
    slots = {}
    states = library.new_states(len(np.unique(ids)), offset_minutes)
    out = np.empty((len(ids), 67))
    codes = np.empty(len(ids), dtype=np.int64)
    for i in range(len(ids)):
        slot = slots.setdefault(int(ids[i]), len(slots))
        codes[i] = library.features(states, slot, int(stamps[i]), np.ascontiguousarray(values[i]), out[i])
    return out, codes, states, slots


# --------------------------------------------------------------------------------------------------------------
# features


def test_c_features_match_the_numba_kernel_on_the_real_sample(compiled, real_sample_path):
    bundle, _, _ = compiled
    library = edge_library(bundle)
    ids, stamps, values, _ = _columns(real_sample_path)
    out, codes, _, _ = _c_features(library, ids, stamps, values)
    assert (codes == IOT_OK).all()
    worst = _assert_features_agree(out, compute_features(real_sample_path))
    print(f"real sample: {len(ids)} samples, max ulp C vs Numba = {worst}")


def test_c_features_match_the_numba_kernel_on_fleet_rows_with_bad_samples(compiled):
    bundle, _, _ = compiled
    library = edge_library(bundle)
    ids, stamps, values, _ = _fleet_with_bad_samples(100_000, seed=21)
    out, codes, states, slots = _c_features(library, ids, stamps, values, offset_minutes=90)
    stream = FeatureStream(utc_offset_minutes=90)
    expected = stream.update_batch(ids, stamps, values)
    assert np.array_equal(np.flatnonzero(codes == IOT_LATE), stream.last_late)
    assert 500 < stream.last_late.size < 1000 and (codes[codes != IOT_LATE] == IOT_OK).all()
    assert np.isnan(values).sum() > 1000 and np.isinf(values).sum() > 500
    worst = _assert_features_agree(out, expected)
    # the states themselves: every field of every machine, bit for bit
    order = [slots[m] for m in stream.machines]
    assert np.array_equal(states[order, :F_WIDTH].view(np.float64), stream._fstate[: len(order)], equal_nan=True)
    assert np.array_equal(states[order, F_WIDTH : F_WIDTH + I_WIDTH], stream._istate[: len(order)])
    print(f"fleet: {len(ids)} samples, {stream.last_late.size} late, max ulp C vs Numba = {worst}")


_sensor = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(-1e3, 1e3),
    st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324]),
)


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(-400, 4000), st.lists(_sensor, min_size=5, max_size=5)),
        min_size=1,
        max_size=60,
    ),
    st.integers(-1439, 1439),
)
def test_c_and_numba_agree_sample_by_sample_with_any_values(compiled, samples, offset):
    """Any sensor bit pattern, any order of timestamps (late ones included), any UTC offset."""
    library = edge_library(compiled[0])
    ids = np.array([m for m, _, _ in samples], dtype=np.int64)
    stamps = np.cumsum([dt for _, dt, _ in samples]).astype(np.int64) + 1_735_689_600
    values = np.array([v for _, _, v in samples], dtype=np.float64)
    out, codes, _, _ = _c_features(library, ids, stamps, values, offset_minutes=offset)
    stream = FeatureStream(utc_offset_minutes=offset)
    expected = stream.update_batch(ids, stamps, values)
    assert np.array_equal(np.flatnonzero(codes == IOT_LATE), stream.last_late)
    _assert_features_agree(out, expected)


# --------------------------------------------------------------------------------------------------------------
# late and invalid samples


def test_late_and_invalid_samples_leave_the_state_untouched(compiled):
    library = edge_library(compiled[0])
    states = library.new_states(1, 0)
    sensors = np.array([70.0, 50.0, 40.0, 3.0, 2.0])
    out = np.zeros(67)
    assert library.features(states, 0, 1_000_000, sensors, out) == IOT_OK
    before = states.copy()
    assert library.features(states, 0, 999_999, sensors, out) == IOT_LATE
    assert np.isnan(out).all() and np.array_equal(states, before)
    scores = np.zeros(1, dtype=SCORES_DTYPE)
    assert library.score(states, 0, 999_999, sensors, 1, scores) == IOT_LATE
    assert np.isnan(scores["anomaly"][0]) and scores["failure_type"][0] == -1 and np.array_equal(states, before)
    for status in (-1, 3, 2**31 - 1):
        assert library.score(states, 0, 2_000_000, sensors, status, scores) == IOT_EINVAL
        assert np.array_equal(states, before)
    for stamp in (2**62 + 1, -(2**62) - 1, 2**63 - 1):
        assert library.features(states, 0, stamp, sensors, out) == IOT_EINVAL
        assert np.array_equal(states, before)
    ffi, lib = library.ffi, library.lib
    assert lib.iot_score(ffi.NULL, 0, ffi.from_buffer("double[]", sensors), 1, ffi.NULL) == IOT_EINVAL
    state = ffi.cast("iot_state *", ffi.from_buffer(states))
    assert lib.iot_features(state, 0, ffi.NULL, ffi.from_buffer("double[]", out)) == IOT_EINVAL
    assert np.array_equal(states, before)
    # iot_state_init refuses a NULL state and offsets beyond Python's one day, leaving the state as it was
    assert lib.iot_state_init(ffi.NULL, 0) == IOT_EINVAL
    for offset in (1440, -1440, 2**31 - 1, -(2**31)):
        assert lib.iot_state_init(state, offset) == IOT_EINVAL
        assert np.array_equal(states, before)
    with pytest.raises(InvalidInputError, match="utc_offset_minutes=1440"):
        library.new_states(1, 1440)
    # an equal timestamp is not late
    assert library.features(states, 0, 1_000_000, sensors, out) == IOT_OK


def test_stream_scorer_rejects_late_and_bad_samples_by_name(compiled):
    scorer = StreamScorer(compiled[0])
    scorer.score(5, 2_000, [70.0, 50.0, 40.0, 3.0, 2.0], 1)
    with pytest.raises(LateSampleError, match="machine 5: timestamp 1000 is earlier than the last accepted 2000"):
        scorer.score(5, 1_000, [70.0, 50.0, 40.0, 3.0, 2.0], 1)
    snapshot = scorer.snapshot()
    with pytest.raises(ValueError, match="row 1: machine_status 7 is not 0, 1 or 2"):
        scorer.score_batch([5, 6], [3_000, 3_000], np.ones((2, 5)), [1, 7])
    with pytest.raises(ValueError, match="a sample is an integer timestamp, 5 sensor numbers"):
        scorer.score(5, 3_000, [70.0, 50.0], 1)
    assert scorer.snapshot() == snapshot  # nothing was applied
    assert scorer.stats.late == 1 and scorer.stats.accepted == 1 and scorer.machines == (5,)


# --------------------------------------------------------------------------------------------------------------
# scores


def _assert_scores_equal(got: dict, expected: dict, rows=slice(None)):
    for name, column in expected.items():
        if name == "failure_type":
            assert (got[name][rows] == column).all(), name
        else:
            diff = np.max(np.abs(got[name][rows] - column))
            assert diff <= TOLERANCE, f"{name}: {diff}"


def test_c_scores_match_bundle_predict_on_the_real_sample(compiled, real_sample_path):
    bundle, _, _ = compiled
    expected = bundle.predict(real_sample_path)
    scorer = StreamScorer(bundle)
    got = scorer.score_batch(*_columns(real_sample_path))
    assert scorer.last_late.size == 0
    _assert_scores_equal(got, expected)
    assert len(set(expected["failure_type"])) > 1 or expected["anomaly_flag"].std() > 0


def test_c_scores_match_bundle_predict_on_fleet_rows_with_bad_samples(compiled, chosen_families):
    bundle, _, _ = compiled
    ids, stamps, values, statuses = _fleet_with_bad_samples(100_000, seed=22)
    scorer = StreamScorer(bundle)
    got = scorer.score_batch(ids, stamps, values, statuses)
    # oracle: the Numba features in the same arrival order, then each model's own library
    stream = FeatureStream()
    features = stream.update_batch(ids, stamps, values)
    accepted = np.ones(len(ids), dtype=bool)
    accepted[stream.last_late] = False
    assert np.array_equal(scorer.last_late, stream.last_late) and stream.last_late.size > 500
    expected = bundle.predict_inputs(design_matrix(features[accepted], statuses[accepted]))
    _assert_scores_equal(got, expected, accepted)
    assert np.isnan(got["anomaly_flag"][~accepted]).all() and (got["failure_type"][~accepted] == "").all()
    assert bundle.manifest["edge"]["tasks"]["maintenance_required"]["family"] == chosen_families["maintenance_required"]


def test_stream_scorer_backends_agree_one_sample_at_a_time(compiled):
    bundle, _, _ = compiled
    ids, stamps, values, statuses = _fleet_with_bad_samples(400, seed=23)
    c, python = StreamScorer(bundle), StreamScorer(bundle, backend="python")
    for i in range(len(ids)):
        sample = (int(ids[i]), int(stamps[i]), values[i], int(statuses[i]))
        try:
            got = c.score(*sample)
        except LateSampleError:
            with pytest.raises(LateSampleError):
                python.score(*sample)
            continue
        expected = python.score(*sample)
        assert got["failure_type"] == expected["failure_type"]
        for name in ("anomaly_flag", "maintenance_required", "downtime_risk", "predicted_remaining_life"):
            assert abs(got[name] - expected[name]) <= TOLERANCE
        assert np.max(np.abs(got["failure_type_proba"] - expected["failure_type_proba"])) <= TOLERANCE
    assert c.stats == python.stats and c.stats.late > 0


@settings(max_examples=15)
@given(st.integers(1, 299), st.sampled_from(["c", "python"]))
def test_snapshot_and_restore_continue_with_the_same_scores(compiled, cut, restore_backend):
    bundle, _, _ = compiled
    ids, stamps, values, statuses = _fleet_with_bad_samples(300, seed=24)
    whole = StreamScorer(bundle).score_batch(ids, stamps, values, statuses)
    first = StreamScorer(bundle)
    head = first.score_batch(ids[:cut], stamps[:cut], values[:cut], statuses[:cut])
    resumed = StreamScorer.restore(bundle, first.snapshot(), backend=restore_backend)
    tail = resumed.score_batch(ids[cut:], stamps[cut:], values[cut:], statuses[cut:])
    for name, column in whole.items():
        joined = np.concatenate([head[name], tail[name]])
        if name == "failure_type":
            assert (joined == column).all()
        else:
            assert np.allclose(joined, column, rtol=0, atol=TOLERANCE, equal_nan=True), name
    assert resumed.stats.accepted + resumed.stats.late == len(ids)


def test_a_tampered_edge_library_is_refused(compiled, tmp_path):
    bundle, _, _ = compiled
    copy = tmp_path / "lib.so"
    data = bytearray((bundle.path / "edge" / "libiotengine.so").read_bytes())
    data[len(data) // 2] ^= 1
    copy.write_bytes(bytes(data))
    with pytest.raises(CompileError, match="sha256 differs"):
        EdgeLibrary(copy, bundle.files["edge/libiotengine.so"])


# --------------------------------------------------------------------------------------------------------------
# the example program, builds, small bundles of every model family


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


@pytest.mark.parametrize("kind, models, trees", [("trees", "chosen", "tl2cgen"), ("tabular", "chosen", "tl2cgen"),
                                                 ("trees", "lightgbm", "uint8")])  # fmt: skip
def test_every_model_family_scores_as_bundle_predict(small_bundles, tmp_path, kind, models, trees):
    folder = tmp_path / "bundle"
    shutil.copytree(small_bundles[kind].path, folder)
    bundle = build_edge(folder, models=models, trees=trees, progress=lambda _: None)
    table = generate(2_000, seed=32)  # other rows than the training ones
    expected = bundle.predict(table, models=models)
    got = StreamScorer(bundle).score_batch(*_columns(table))
    _assert_scores_equal(got, expected)
    assert bundle.manifest["edge"]["trees"] == trees


def test_uint8_needs_lightgbm_models(small_bundles, tmp_path):
    with pytest.raises(CompileError, match="uint8 tree form exists for LightGBM models; the chosen model is random"):
        export_bundle_c(small_bundles["trees"], tmp_path / "c", trees="uint8", progress=lambda _: None)


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
@pytest.mark.parametrize("opt", ["-O2", "-Os"])
@pytest.mark.parametrize("kind", ["trees", "tabular"])
def test_exported_tree_builds_with_warnings_as_errors(small_bundles, tmp_path, compiler, opt, kind):
    assert shutil.which(compiler), f"{compiler} is needed (README: install clang)"
    tree = export_bundle_c(small_bundles[kind], tmp_path / "c", progress=lambda _: None)
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
                         ("downtime", "downtime_risk"), ("remaining_life", "predicted_remaining_life")):  # fmt: skip
        assert np.max(np.abs(got[column].to_numpy() - expected[task])) <= TOLERANCE, column
    proba = got[[f"p_{name}" for name in FAILURE_TYPES]].to_numpy()
    assert np.max(np.abs(proba - expected["failure_type_proba"])) <= TOLERANCE
    assert (got["failure_type"].to_numpy() == expected["failure_type"]).all()
    # --features prints the 67 features, %.17g round-trips: the same doubles as the Numba kernel
    done = _run_example(source, text, "--features")
    features = pd.read_csv(io.StringIO(done.stdout)).iloc[:, 3:].to_numpy()
    _assert_features_agree(features, compute_features(real_sample_path))


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


# --------------------------------------------------------------------------------------------------------------
# fuzzing


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
