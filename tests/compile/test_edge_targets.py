"""The edge library for microcontrollers and in float: every Cortex-M target cross-compiles (warnings as errors,
float builds under -Wdouble-promotion -Wfloat-conversion) with no allocator, no mutable globals, static stack
frames and no recursion; the single-sample path fits 2 KB of stack on a Cortex-M4F; the arm-linux build under
qemu-arm prints x86's bytes; float decisions equal double ones on the real sample; state records carry a CRC
(zlib's) and refuse any damaged byte; a flash budget picks models that fit."""

from __future__ import annotations

import json
import shutil
import subprocess
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.edge import write_samples
from bench.edge_peers import peer_rows
from bench.edge_targets import GLIBC_WITHOUT_FMA, example_output, float_drift, state_bytes
from compile.edge import make
from compile.edge_binding import STATUS, EdgeLibrary
from compile.edge_resources import cross_host_build, measure_target, qemu_instructions
from compile.edge_targets import TARGET_NAMES, TARGETS
from compile.errors import CompileError
from engine.bundle.choices import EDGE_TARGETS
from engine.bundle.edge import export_bundle_c
from engine.bundle.flash_budget import TOLERANCE, export_for_budget, pick_options
from engine.bundle.format import Bundle, TaskModel
from engine.data.loading import load_telemetry, write_kaggle_csv
from engine.data.synthetic import generate
from engine.models.cross_validation import cross_validate, fit_model
from engine.models.tasks import TASKS, inputs_and_targets
from engine.models.zoo import candidates
from tests.samples import telemetry_arrays


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A bundle of LightGBM models (the chosen set), each with its 3-fold CV score, trained on 3k kaggle rows;
    and those rows."""
    table = generate(3_000, seed=41)
    X, y = inputs_and_targets(table)
    models = {}
    for task in TASKS:
        result = cross_validate(task, X, y[task.name], families=["lightgbm"], n_jobs=1)["lightgbm"]
        estimator = fit_model(candidates(task.kind, n_jobs=1)["lightgbm"], X, y[task.name])
        threshold = 0.5 if task.kind == "binary" else None
        models[task.name] = TaskModel(task.name, "lightgbm", estimator, threshold=threshold,
                                      metrics={task.score: result.mean(task.score)})  # fmt: skip
    folder = tmp_path_factory.mktemp("targets") / "bundle"
    return Bundle.write(folder, models), table


def test_the_parser_offers_the_targets():
    assert EDGE_TARGETS == TARGET_NAMES


@pytest.mark.parametrize(
    "target, real",
    [("cortex-m0plus", "float"), ("cortex-m4f", "float"), ("cortex-m4f", "double"), ("cortex-m7", "double")],
)
def test_cortex_m_builds_fit_the_firmware_rules(compiled, tmp_path, target, real):
    bundle = compiled[0]
    tree = export_bundle_c(bundle, tmp_path / "c", models="lightgbm", trees="uint8", real=real, target=target,
                           progress=lambda _: None)  # fmt: skip
    resources = measure_target(tree.directory, target, tree.library_sources)
    assert resources["allocators"] == []
    assert resources["library"]["data"] == 0 and resources["library"]["bss"] == 0  # no mutable globals
    assert resources["stack_not_static"] == []
    assert resources["flash_bytes"] > resources["library"]["text"] > 0
    assert all(not name.startswith("iot_") for name in resources["stack_external"])  # every library function seen
    if (target, real) == ("cortex-m4f", "float"):
        assert resources["stack_iot_score"] <= 2048
    cflags = (tree.directory / "Makefile").read_text()
    assert (" -Wdouble-promotion -Wfloat-conversion" in cflags) == (real == "float")
    assert " ".join(TARGETS[target].flags) in cflags


def test_recursion_is_refused(tmp_path):
    (tmp_path / "a.ci").write_text(
        'graph: { title: "a.c"\nnode: { title: "f" label: "f\\na.c:1:1\\n16 bytes (static)" }\n'
        'node: { title: "g" label: "g\\na.c:2:1\\n8 bytes (static)" }\n'
        'edge: { sourcename: "f" targetname: "g" label: "a.c:1:5" }\n'
        'edge: { sourcename: "g" targetname: "f" label: "a.c:2:5" }\n}\n'
    )
    from compile.edge_resources import worst_stack

    with pytest.raises(CompileError, match="recursion in the edge library: f -> g -> f"):
        worst_stack(tmp_path, "f")


@pytest.mark.parametrize("real", ["double", "float"])
def test_arm_linux_under_qemu_prints_the_bytes_of_x86(compiled, tmp_path, real_sample_path, real):
    bundle = compiled[0]
    tree = export_bundle_c(bundle, tmp_path / "c", models="lightgbm", trees="uint8", real=real,
                           progress=lambda _: None)  # fmt: skip
    make(tree.directory, "iotengine_example")
    arm = cross_host_build(tree.directory)
    csv_path = write_kaggle_csv(load_telemetry(real_sample_path), tmp_path / "real.csv")
    x86_features = example_output(tree.directory / "iotengine_example", csv_path, features=True)
    arm_features = example_output(arm / "iotengine_example", csv_path, features=True, runner=("qemu-arm",))
    assert arm_features == x86_features and x86_features.count(b"\n") > 1000
    # Scores: the same bytes once x86's glibc uses the exp that armhf's has (its FMA variant rounds some
    # results of exp differently; the library's own arithmetic is the same).
    x86 = example_output(tree.directory / "iotengine_example", csv_path, env=GLIBC_WITHOUT_FMA)
    assert example_output(arm / "iotengine_example", csv_path, runner=("qemu-arm",)) == x86
    if real == "float":  # the instruction count of one iot_score: the difference of two runs
        samples = write_samples(generate(300, mode="fleet", seed=5), tmp_path / "samples.bin")
        assert 1_000 < qemu_instructions(arm, samples, n=20) < 2_000_000


def test_float_decisions_equal_double_ones_on_the_real_sample(compiled, tmp_path, real_sample_path):
    bundle = compiled[0]
    builds = {}
    for real in ("double", "float"):
        tree = export_bundle_c(bundle, tmp_path / real, models="lightgbm", trees="uint8", real=real,
                               progress=lambda _: None)  # fmt: skip
        make(tree.directory, "iotengine_example", "iotengine_bench")
        builds[real] = tree.directory
    csv_path = write_kaggle_csv(load_telemetry(real_sample_path), tmp_path / "real.csv")
    manifest = json.loads((builds["double"] / "MANIFEST.json").read_text())
    thresholds = {task: info["threshold"] or 0.5 for task, info in manifest["tasks"].items()}
    thresholds["unsupervised"] = manifest["unsupervised"]["threshold"]
    drift = float_drift(builds["double"], builds["float"], csv_path, thresholds)
    assert drift["rows"] == load_telemetry(real_sample_path).num_rows
    assert drift["rows_with_equal_decisions"] >= 0.999
    # features in float: within float32's precision of the double build
    assert drift["feature_max_abs_diff"]["temperature"] < 1e-4
    assert 0 < drift["feature_max_abs_diff"]["temp_sq"] < 1e-2
    # the double build is the one that equals the Numba kernel: the float build's rows are not the same bits
    assert example_output(builds["double"] / "iotengine_example", csv_path) != example_output(
        builds["float"] / "iotengine_example", csv_path
    )


@pytest.fixture(scope="module")
def edge_library(compiled):
    bundle = compiled[0]
    return EdgeLibrary(bundle.path / bundle.edge.library, bundle.edge.sha256)


def _record(library, states, k) -> bytes:
    size = int(library.lib.iot_state_record_size())
    record = library.ffi.new("unsigned char[]", size)
    state = library.ffi.cast("iot_state *", library.ffi.from_buffer(states[k]))
    assert library.lib.iot_state_save(state, record, size) == STATUS["IOT_OK"]
    return bytes(library.ffi.buffer(record, size))


def _restore(library, states, k, record: bytes) -> int:
    state = library.ffi.cast("iot_state *", library.ffi.from_buffer(states[k]))
    return int(library.lib.iot_state_restore(state, record, len(record)))


def test_state_records_round_trip_with_zlib_crc(edge_library):
    states = edge_library.new_states(2, 0)
    _, stamps, values, _ = telemetry_arrays(generate(50, seed=3))
    for t, v in zip(np.sort(stamps), values, strict=True):  # one machine, in time order
        assert edge_library.features(states, 0, int(t), np.ascontiguousarray(v), np.zeros(67)) == STATUS["IOT_OK"]
    record = _record(edge_library, states, 0)
    assert record[:4] == b"IOTS" and int.from_bytes(record[4:6], "little") == 1 and record[6] == 8
    assert int.from_bytes(record[8:12], "little") == edge_library.state_size == state_bytes("double")
    assert int.from_bytes(record[-4:], "little") == zlib.crc32(record[:-4])
    assert _restore(edge_library, states, 1, record) == STATUS["IOT_OK"]
    assert np.array_equal(states[0], states[1])


@settings(max_examples=40)
@given(bit=st.integers(min_value=0, max_value=8 * 464 - 1))
def test_a_flipped_bit_in_a_state_record_is_refused(edge_library, bit):
    states = edge_library.new_states(2, 60)
    edge_library.features(states, 0, 1_700_000_000, np.array([70.0, 1.0, 40.0, 3.0, 2.0]), np.zeros(67))
    record = bytearray(_record(edge_library, states, 0))
    bit %= 8 * len(record)
    record[bit // 8] ^= 1 << (bit % 8)
    before = states[1].copy()
    assert _restore(edge_library, states, 1, bytes(record)) == STATUS["IOT_ECORRUPT"]
    assert np.array_equal(states[1], before)
    assert _restore(edge_library, states, 1, bytes(record[:-1])) == STATUS["IOT_ECORRUPT"]


def test_a_record_of_an_impossible_state_is_refused(edge_library):
    states = edge_library.new_states(2, 0)
    states[0, -8] = -1  # count[0] of the int64 counters (kernels/state.py's layout): negative
    record = bytearray(_record(edge_library, states, 0))
    assert _restore(edge_library, states, 1, bytes(record)) == STATUS["IOT_ECORRUPT"]


def test_a_flash_budget_picks_models_that_fit(trained, tmp_path):
    bundle, table = trained
    full = export_bundle_c(bundle, tmp_path / "full", real="float", target="cortex-m4f", progress=lambda _: None)
    full_flash = measure_target(full.directory, "cortex-m4f", full.library_sources)["flash_bytes"]
    data = tmp_path / "train.parquet"
    import pyarrow.parquet as pq

    pq.write_table(table, data)
    budget = full_flash * 2 // 3
    result = export_for_budget(bundle, tmp_path / "budget", budget=budget, target="cortex-m4f", real="float",
                               data=data, refits=((15, 7), (4, 3)), progress=lambda _: None)  # fmt: skip
    document = json.loads((tmp_path / "budget" / "FLASH_BUDGET.json").read_text())
    assert document["flash_bytes"] == result.resources["flash_bytes"] <= budget < full_flash
    for row in document["tasks"]:
        task = next(t for t in TASKS if t.name == row["task"])
        assert row["full_cv_score"] == pytest.approx(
            bundle.set_entries("chosen")[task.name]["metrics"][task.score], abs=1e-6
        )
        assert row["given_up"] == pytest.approx(row["full_cv_score"] - row["cv_score"], abs=2e-6)
        assert row["tolerance"] == TOLERANCE[task.name]
    assert any(row["model"].startswith("lightgbm ") for row in document["tasks"])  # a refit was needed
    smallest = sum(min(o.flash for o in options) for options in result.options.values())
    assert pick_options(result.options, result.full, smallest - 1) is None
    picked = pick_options(result.options, result.full, 10**9)  # no limit: nothing given up
    assert all(option.score >= result.full[task] for task, option in picked.items())


def test_export_c_cli_builds_for_a_cortex_m(trained, tmp_path, capsys):
    from engine.cli import main

    bundle, _ = trained
    out = tmp_path / "m7"
    assert main(["export-c", "--bundle", str(bundle.path), "--out", str(out), "--target", "cortex-m7",
                 "--real", "float", "--trees", "uint8", "--build"]) == 0  # fmt: skip
    resources = json.loads((out / "RESOURCES.json").read_text())
    assert resources["target"] == "cortex-m7" and resources["allocators"] == []
    assert "cortex-m7 (float), -Os:" in capsys.readouterr().out
    assert (out / "mcu_image.elf").is_file() and (out / "libiotengine.a").is_file()
    host = tmp_path / "host"
    assert main(["export-c", "--bundle", str(bundle.path), "--out", str(host), "--trees", "uint8", "--build"]) == 0
    assert json.loads((host / "RESOURCES.json").read_text())["target"] == "host"
    assert (host / "iotengine_example").is_file() and (host / "iotengine_bench").is_file()


def test_the_export_is_a_platformio_library_and_a_zephyr_module(trained, tmp_path):
    tree = export_bundle_c(trained[0], tmp_path / "c", real="float", target="cortex-m4f", progress=lambda _: None)
    library = json.loads((tree.directory / "library.json").read_text())
    assert library["build"]["srcFilter"] == [f"+<{source}>" for source in tree.library_sources]
    assert {"-std=c99", "-ffp-contract=off", "-Wdouble-promotion", "-DIOT_MODEL_BLOCK=4"} <= set(
        library["build"]["flags"]
    )
    assert (tree.directory / library["headers"]).is_file()
    module = (tree.directory / "zephyr" / "module.yml").read_text()
    assert "  cmake: zephyr\n" in module and "  kconfig: zephyr/Kconfig\n" in module
    assert (tree.directory / "zephyr" / "Kconfig").is_file()
    cmake = (tree.directory / "zephyr" / "CMakeLists.txt").read_text()
    for source in tree.library_sources:
        assert f"${{CMAKE_CURRENT_LIST_DIR}}/../{source}" in cmake and (tree.directory / source).is_file()
    assert "config IOTENGINE_MODEL_BLOCK" in (tree.directory / "zephyr" / "Kconfig").read_text()


def test_peers_sit_beside_iotengine_on_the_same_models():
    rows = peer_rows(generate(4_000, seed=5), rows=1_000)
    generators = {(row["model"], row["generator"]) for row in rows}
    assert {("random forest", "emlearn"), ("random forest", "m2cgen"), ("LightGBM", "m2cgen")} <= generators
    for row in rows:
        if row["generator"].startswith("iotengine"):
            assert row["max_abs_diff"] == 0.0 and row["decisions_equal"] == 1.0  # predict_proba's bits
        if "missing" not in row:
            assert row["x86_flash"] > 0 and row["m4f_flash"] > 0 and row["host_ns_per_row"] > 0
    assert next(r for r in rows if r["generator"] == "emlearn" and r["model"] == "LightGBM")["missing"]


def test_cmake_cross_builds_the_static_library_for_a_cortex_m4f(trained, tmp_path):
    tree = export_bundle_c(trained[0], tmp_path / "c", trees="uint8", real="float", target="cortex-m4f",
                           progress=lambda _: None)  # fmt: skip
    toolchain = tmp_path / "cortex-m4f.cmake"
    toolchain.write_text(
        "set(CMAKE_SYSTEM_NAME Generic)\nset(CMAKE_SYSTEM_PROCESSOR arm)\nset(CMAKE_C_COMPILER arm-none-eabi-gcc)\n"
        f'set(CMAKE_C_FLAGS_INIT "{" ".join(TARGETS["cortex-m4f"].flags)}")\n'
        "set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)\n"
    )
    build = tmp_path / "build"
    subprocess.run(["cmake", "-S", str(tree.directory), "-B", str(build), f"-DCMAKE_TOOLCHAIN_FILE={toolchain}"],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run(["cmake", "--build", str(build), "-j2"], check=True, capture_output=True)
    archive = build / "libiotengine.a"
    header = subprocess.run(["arm-none-eabi-readelf", "-h", str(archive)], capture_output=True, text=True).stdout
    assert "ARM" in header and not (build / "libiotengine.so").exists()


def test_the_target_report_names_what_it_cannot_build(trained, tmp_path, monkeypatch):
    import bench.edge_targets as edge_targets

    real_which = shutil.which
    monkeypatch.setattr(edge_targets.shutil, "which", lambda name: None if "arm" in name else real_which(name))
    bundle, table = trained
    report = edge_targets.target_report(bundle, tmp_path, {"kaggle": table}, models="chosen", trees="uint8", rows=300)
    assert list(report["builds"]) == ["host/double"]
    assert set(report["not_measured"]) == {"cortex-m0plus/float", "cortex-m4f/float", "cortex-m7/double",
                                           "arm-linux under qemu-arm"}  # fmt: skip
    assert report["arm_linux_same_bytes_as_x86"] == {} and report["qemu_instructions_per_score"] == {}
    assert report["float_drift"]["kaggle"]["rows"] == 300
    text = "\n".join(edge_targets.targets_markdown(report))
    assert "| cortex-m4f/float | not measured: arm-none-eabi-gcc is not installed (apt-get install" in text
