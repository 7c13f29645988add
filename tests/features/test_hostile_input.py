"""Hostile input to the feature paths (issue 23): ids and timestamps that would wrap or overflow, NaT, absurd
sensor values, and damaged or crafted snapshots. Each is refused with one InvalidInputError naming the row or
field, or follows the documented policy, and never changes or corrupts a state."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.data.synthetic import generate
from engine.errors import InvalidInputError
from engine.features.batch import compute_features
from engine.features.stream import FeatureStream
from kernels.state import I_COUNT, I_LAST_TS, I_SAMPLES, SENSOR_LIMIT
from tests.oracles.features import PythonFeatureStream, assert_close_to_oracle, bits, pandas_features
from tests.samples import telemetry_arrays

SAMPLE = [70.0, 50.0, 40.0, 3.0, 2.0]


def _stream_with_history() -> tuple[FeatureStream, tuple]:
    stream = FeatureStream()
    stream.update_batch([1, 2, 1], [60, 60, 120], np.full((3, 5), 2.0))
    return stream, stream.state_arrays()


def _unchanged(stream: FeatureStream, before) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(stream.state_arrays(), before, strict=True))


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (np.array([1, 2**64 - 1], dtype=np.uint64), "machine_ids: row 1: 18446744073709551615 does not fit in int64"),
        (np.array([1.0, 1e19]), r"machine_ids: row 1: 1e\+19 is not an integer that fits in int64"),
        (np.array([1.0, 7.5]), r"machine_ids: row 1: 7.5 is not an integer"),
        (np.array([np.nan, 1.0]), r"machine_ids: row 0: nan is not an integer"),
    ],
)
def test_ids_that_would_wrap_are_refused_whole(ids, message):
    stream, before = _stream_with_history()
    with pytest.raises(InvalidInputError, match=message):
        stream.update_batch(ids, [600, 600], np.ones((2, 5)))
    assert _unchanged(stream, before) and stream.machines == (1, 2)


@pytest.mark.parametrize(
    ("stamps", "message"),
    [
        (np.array(["2025-01-01", "NaT"], dtype="datetime64[s]"), "timestamps_s: row 1 is NaT"),
        (np.array([600, np.iinfo(np.int64).min]), "timestamps_s: row 1: timestamp -9223372036854775808 is beyond"),
        (np.array([600, 2**62 + 1]), "row 1: timestamp 4611686018427387905 is beyond"),
        (np.array([600, 2**63 - 1]), "row 1: timestamp 9223372036854775807 is beyond"),
    ],
)
def test_timestamps_beyond_the_limit_or_nat_are_refused_whole(stamps, message):
    stream, before = _stream_with_history()
    with pytest.raises(InvalidInputError, match=message):
        stream.update_batch([1, 3], stamps, np.ones((2, 5)))
    assert _unchanged(stream, before) and stream.machines == (1, 2)


def test_one_rule_for_single_samples():
    stream, before = _stream_with_history()
    for timestamp in (2**62 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**70):
        with pytest.raises(InvalidInputError, match=f"machine 1: timestamp {timestamp} is beyond"):
            stream.update(1, timestamp, SAMPLE)
    for machine_id, message in ((7.5, "machine_id must be an integer, not 7.5"), (2**63, "does not fit in int64")):
        with pytest.raises(InvalidInputError, match=message):
            stream.update(machine_id, 600, SAMPLE)
    assert _unchanged(stream, before) and stream.machines == (1, 2)
    # the limit itself is a valid time on every path (the C library's IOT_TIMESTAMP_LIMIT is inclusive too)
    assert np.isfinite(stream.update(3, 2**62, SAMPLE)[0])


def test_datetime64_is_floored_to_the_second_as_the_loader_floors():
    stream = FeatureStream()
    stamps = np.array(["1969-12-31T23:59:59.5", "2025-01-01T00:00:00.999"], dtype="datetime64[ms]")
    row = stream.update_batch([1, 2], stamps, np.ones((2, 5)))
    assert np.array_equal(bits(row), bits(FeatureStream().update_batch([1, 2], [-1, 1_735_689_600], np.ones((2, 5)))))


@pytest.mark.parametrize("bad", ["hello", None, 42, b"", b"not arrow at all"])
def test_restore_of_something_that_is_not_a_snapshot_is_one_clear_error(bad):
    with pytest.raises(InvalidInputError, match="snapshot"):
        FeatureStream.restore(bad)


def _snapshot() -> bytes:
    stream = FeatureStream()
    ids, stamps, values, _ = telemetry_arrays(generate(400, machines=6, mode="fleet", seed=3))
    stream.update_batch(ids, stamps, values)
    return stream.snapshot()


def test_every_flipped_bit_and_every_truncation_is_refused():
    snapshot = _snapshot()
    original = FeatureStream.restore(snapshot).state_arrays()
    rng = np.random.default_rng(0)
    refused = 0
    for bit in rng.choice(len(snapshot) * 8, 600, replace=False):
        damaged = bytearray(snapshot)
        damaged[bit // 8] ^= 1 << (bit % 8)
        try:
            restored = FeatureStream.restore(bytes(damaged))
        except InvalidInputError:
            refused += 1
            continue
        # a bit that Arrow ignores (padding) may be flipped: then the state must be exactly the original one
        assert all(np.array_equal(bits(a), bits(b)) for a, b in zip(restored.state_arrays(), original, strict=True))
    assert refused >= 450  # the rest hit padding or framing Arrow does not read, and restored the same state
    for cut in range(0, len(snapshot), 97):
        with pytest.raises(InvalidInputError, match="snapshot"):
            FeatureStream.restore(snapshot[:cut])


@pytest.mark.parametrize(
    ("field", "value"),
    [(I_COUNT, -1), (I_COUNT + 2, 10**6), (I_SAMPLES, -3), (I_SAMPLES, 2**63 - 1), (I_LAST_TS, 2**62 + 1)],
)
def test_a_crafted_snapshot_with_impossible_counters_is_refused(field, value):
    """The digest is recomputed, as a crafter would: the state check still refuses it."""
    from engine.features.snapshot import snapshot_bytes

    stream = FeatureStream.restore(_snapshot())
    fstate, istate = stream.state_arrays()
    istate[1, field] = value
    crafted = snapshot_bytes(stream.machines, fstate, istate, 0, 0)
    with pytest.raises(InvalidInputError, match=f"machine {stream.machines[1]}: impossible state"):
        FeatureStream.restore(crafted)


def _with_absurd_values(values: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cells = rng.random(values.shape) < 0.02
    absurd = values.copy()
    absurd[cells] = rng.choice([-1.0, 1.0], cells.sum()) * 10.0 ** rng.uniform(9.0001, 308.2, cells.sum())
    missing = values.copy()
    missing[cells] = np.nan
    return absurd, missing


def test_absurd_sensor_values_are_missing_and_never_poison_a_machine():
    """A value beyond +-1e9 (1e308 included) gives the bits of a NaN in its place, on the stream and the batch
    path, and the features stay finite where the pandas oracle's are (the oracle applies the policy itself)."""
    table = generate(3_000, machines=5, mode="fleet", seed=11)
    ids, stamps, values, _ = telemetry_arrays(table)
    absurd, missing = _with_absurd_values(values, seed=1)
    with_absurd = FeatureStream().update_batch(ids, stamps, absurd)
    with_nan = FeatureStream().update_batch(ids, stamps, missing)
    assert np.array_equal(bits(with_absurd), bits(with_nan))
    frame = table.to_pandas()
    frame[["temperature", "vibration", "humidity", "pressure", "energy_consumption"]] = absurd
    batch = compute_features(frame)
    assert_close_to_oracle(batch, pandas_features(frame))
    assert np.array_equal(bits(batch), bits(with_nan))  # the rows are in time order: batch == stream
    assert not np.isinf(batch).any()  # no overflow anywhere
    python = PythonFeatureStream()
    per_sample = np.array([python.update(int(m), int(t), list(v)) for m, t, v in zip(ids, stamps, absurd, strict=True)])
    assert_close_to_oracle(per_sample, with_nan)


@given(value=st.floats(min_value=SENSOR_LIMIT, max_value=1.7e308, exclude_min=True), sign=st.sampled_from([-1, 1]))
def test_any_value_beyond_the_limit_is_missing_and_the_limit_itself_is_a_reading(value, sign):
    stream = FeatureStream()
    row = stream.update(1, 60, [sign * value, 1.0, 1.0, 1.0, 1.0])
    assert np.isnan(row[0]) and stream.stats.missing["temperature"] == 1
    later = stream.update(1, 120, [20.0, 1.0, 1.0, 1.0, 1.0])
    assert np.isfinite(later).sum() == np.isfinite(FeatureStream().update(1, 120, [20.0, 1.0, 1.0, 1.0, 1.0])).sum()
    at_limit = FeatureStream().update(1, 60, [sign * SENSOR_LIMIT, 1.0, 1.0, 1.0, 1.0])
    assert at_limit[0] == sign * SENSOR_LIMIT and np.isfinite(at_limit[5])  # its square is finite


def test_the_loader_counts_absurd_values_as_missing():
    from engine.data.loading import load_telemetry_with_report

    frame = pd.DataFrame(
        {
            "timestamp": ["2025-01-01 00:00:00", "2025-01-01 00:01:00", "2025-01-01 00:02:00"],
            "machine_id": [1, 1, 1],
            "temperature": [1e308, -2e9, 50.0],
            "vibration": [1.0, 1.0, SENSOR_LIMIT],
            "humidity": [1.0, 1.0, 1.0],
            "pressure": [1.0, 1.0, 1.0],
            "energy_consumption": [1.0, 1.0, 1.0],
            "machine_status": [0, 0, 0],
        }
    )
    table, report = load_telemetry_with_report(frame)
    assert table.column("temperature").to_pylist()[2] == 50.0
    assert np.isnan(table.column("temperature").to_numpy()[:2]).all()
    assert table.column("vibration").to_pylist()[2] == SENSOR_LIMIT
    assert report.missing["temperature"] == 2 and report.missing["vibration"] == 0
