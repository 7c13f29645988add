"""The C edge library's features (compile/c/iot_features.c.in) against the Numba kernel, on the real sample, on
fleet rows with bad samples and sample by sample with any values; late and invalid samples leave the state as it
was; a tampered library is refused. Scores: tests/stream/test_scorer.py; builds: tests/compile/test_edge_build.py.

Oracle: the Numba kernel, itself checked against pandas in tests/features/test_batch_and_stream.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compile.edge_binding import IOT_EINVAL, IOT_LATE, IOT_OK, SCORES_DTYPE, EdgeLibrary
from compile.errors import CompileError
from engine.bundle.edge import edge_library
from engine.errors import InvalidInputError
from engine.features.batch import compute_features
from engine.features.stream import FeatureStream
from kernels.state import F_WIDTH, I_WIDTH
from tests.oracles.ulp import assert_features_agree
from tests.samples import fleet_with_bad_samples, telemetry_arrays


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
    ids, stamps, values, _ = telemetry_arrays(real_sample_path)
    out, codes, _, _ = _c_features(library, ids, stamps, values)
    assert (codes == IOT_OK).all()
    worst = assert_features_agree(out, compute_features(real_sample_path))
    print(f"real sample: {len(ids)} samples, max ulp C vs Numba = {worst}")


def test_c_features_match_the_numba_kernel_on_fleet_rows_with_bad_samples(compiled):
    bundle, _, _ = compiled
    library = edge_library(bundle)
    ids, stamps, values, _ = fleet_with_bad_samples(100_000, seed=21)
    out, codes, states, slots = _c_features(library, ids, stamps, values, offset_minutes=90)
    stream = FeatureStream(utc_offset_minutes=90)
    expected = stream.update_batch(ids, stamps, values)
    assert np.array_equal(np.flatnonzero(codes == IOT_LATE), stream.last_late)
    assert 500 < stream.last_late.size < 1000 and (codes[codes != IOT_LATE] == IOT_OK).all()
    assert np.isnan(values).sum() > 1000 and np.isinf(values).sum() > 500
    worst = assert_features_agree(out, expected)
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
    assert_features_agree(out, expected)


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


# --------------------------------------------------------------------------------------------------------------
# scores


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


# --------------------------------------------------------------------------------------------------------------
# fuzzing
