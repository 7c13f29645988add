"""The Python binding and iotengine.h agree: the cffi declarations are the header's, and the status codes, the
``iot_scores`` layout, the state size, the limits and the names the binding uses are what a C compiler sees in
the header of a built library."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np

from compile.edge_binding import ABI, SCORES_DTYPE, STATUS, abi_declarations, real_abi
from compile.templates import c_source
from engine.bundle.edge import edge_library
from engine.features.inputs import MAX_UTC_OFFSET_MINUTES, TIMESTAMP_LIMIT
from engine.models.autoencoder import DETECTOR_COLUMNS
from engine.models.tasks import INPUT_COLUMNS
from kernels.history import N_HISTORY
from kernels.names import FAILURE_TYPES, FEATURE_NAMES

PROBE = Path(__file__).with_name("abi_probe.c")


def _compiler_view(header_folder, tmp_path) -> dict[str, int]:
    command = ["gcc", "-std=c99", "-Wall", "-Werror", f"-I{header_folder}", str(PROBE), "-o", str(tmp_path / "probe")]
    subprocess.run(command, check=True)
    out = subprocess.run([str(tmp_path / "probe")], capture_output=True, text=True, check=True).stdout
    return {name: int(value) for name, value in (line.split() for line in out.splitlines())}


def test_the_binding_declares_what_the_built_header_says(compiled):
    exported = (compiled[0].path / "edge" / "src" / "iotengine.h").read_text()
    assert abi_declarations(exported) == ABI == real_abi("double")
    assert "@REAL@" in abi_declarations(c_source("iotengine.h.in"))
    for function in ("iot_state_init", "iot_features", "iot_history", "iot_score", "iot_score_many", "iot_status_str"):
        assert re.search(rf"\b{function}\(", ABI), function
    assert re.search(r"enum iot_status iot_state_init\(iot_state \*s, int32_t utc_offset_minutes\);", ABI)


def test_status_codes_layout_and_limits_are_the_c_compilers(compiled, tmp_path):
    seen = _compiler_view(compiled[0].path / "edge" / "src", tmp_path)
    assert {name: seen[name] for name in STATUS} == STATUS
    assert {name: seen[name] for name in SCORES_DTYPE.names} == {
        name: SCORES_DTYPE.fields[name][1] for name in SCORES_DTYPE.names
    }
    assert seen["scores"] == SCORES_DTYPE.itemsize
    library = edge_library(compiled[0])
    assert seen["state"] == library.state_size
    assert seen["limit"] == TIMESTAMP_LIMIT and seen["max_offset"] == MAX_UTC_OFFSET_MINUTES
    assert (seen["inputs"], seen["history"]) == (len(INPUT_COLUMNS), N_HISTORY)
    assert seen["detector_inputs"] == len(DETECTOR_COLUMNS) == len(INPUT_COLUMNS) + N_HISTORY
    assert seen["has_unsupervised"] == 1  # the fixture's bundle has the detector


def test_the_library_names_and_describes_what_python_does(compiled):
    library = edge_library(compiled[0])
    ffi, lib = library.ffi, library.lib
    assert tuple(ffi.string(lib.iot_failure_type_names[k]).decode() for k in range(5)) == FAILURE_TYPES
    assert tuple(ffi.string(lib.iot_feature_names[k]).decode() for k in range(67)) == FEATURE_NAMES
    descriptions = {code: library.status_str(code) for code in STATUS.values()}
    assert descriptions[STATUS["IOT_OK"]] == "ok" and len(set(descriptions.values())) == len(STATUS)
    assert "late" in descriptions[STATUS["IOT_LATE"]] and "UTC offset" in descriptions[STATUS["IOT_EINVAL"]]
    assert library.status_str(99) == "unknown iot_status"
    states = library.new_states(2, -MAX_UTC_OFFSET_MINUTES)
    assert np.all(states[:, -1] == -MAX_UTC_OFFSET_MINUTES * 60)  # offset_s, the last field of iot_state
