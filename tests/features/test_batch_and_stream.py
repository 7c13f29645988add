"""The 67 features: agreement with the pandas oracle (bench.baselines, no kernel code), batch == stream bit for
bit, snapshot/restore, late and bad samples, fixed-size state, the scikit-learn transformer."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from bench.river_peer import RIVER_FEATURES, RiverFeatureStream
from engine.data.loading import load_telemetry
from engine.data.schema import SENSORS
from engine.data.synthetic import generate
from engine.errors import InvalidInputError, LateSampleError
from engine.features.batch import FEATURE_NAMES, FeatureTransformer, compute_features, features_table
from engine.features.stream import FeatureStream
from kernels import FEATURE_NAMES as KERNEL_FEATURE_NAMES
from tests.oracles.features import PythonFeatureStream, assert_close_to_oracle, bits, pandas_features

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "features.md"


def test_names_follow_the_spec():
    assert KERNEL_FEATURE_NAMES == FEATURE_NAMES
    assert len(FEATURE_NAMES) == 67 == len(set(FEATURE_NAMES))
    text = SPEC.read_text()
    numbered = re.findall(r"(?<![\d-])(\d+) `([a-z_0-9]+)`", text.split("## The list")[1])
    assert len(numbered) >= 30
    for index, name in numbered:
        assert FEATURE_NAMES[int(index)] == name, (index, name)


def test_real_sample_agrees_with_pandas_oracle(real_sample_path):
    table = load_telemetry(real_sample_path)
    assert_close_to_oracle(compute_features(table), pandas_features(table))


def _hostile_fleet(seed: int = 4):
    """Fleet data with missing, infinite and absurd (beyond +-1e9, up to 1e308) values, negative values, equal
    timestamps, rows shuffled."""
    frame = generate(12_000, machines=12, mode="fleet", seed=seed).to_pandas()
    rng = np.random.default_rng(seed)
    n = len(frame)
    for sensor in SENSORS:
        frame.loc[rng.random(n) < 0.01, sensor] = np.inf * rng.choice([-1, 1])
        absurd = rng.random(n) < 0.005
        frame.loc[absurd, sensor] = rng.choice([-1.0, 1.0], absurd.sum()) * 10.0 ** rng.uniform(9.01, 308, absurd.sum())
        negative = rng.random(n) < 0.02
        frame.loc[negative, sensor] = -frame.loc[negative, sensor].abs()
    # Equal timestamps: some samples repeat their machine's previous timestamp.
    frame = frame.sort_values(["machine_id", "timestamp"], kind="stable").reset_index(drop=True)
    repeat = np.flatnonzero(rng.random(n) < 0.05)
    repeat = repeat[(repeat > 0) & (frame.machine_id.to_numpy()[repeat] == frame.machine_id.to_numpy()[repeat - 1])]
    frame.loc[repeat, "timestamp"] = frame.timestamp.to_numpy()[repeat - 1]
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.mark.parametrize("utc_offset_minutes", [0, 330, -480])
def test_hostile_fleet_agrees_with_pandas_oracle(utc_offset_minutes):
    frame = _hostile_fleet()
    assert (frame[list(SENSORS)] < 0).to_numpy().sum() > 100
    assert np.isinf(frame[list(SENSORS)].to_numpy()).sum() > 100
    assert frame.duplicated(["machine_id", "timestamp"]).sum() > 100
    features = compute_features(frame, utc_offset_minutes=utc_offset_minutes)
    oracle = pandas_features(frame, utc_offset_minutes)
    assert_close_to_oracle(features, oracle)
    assert np.isnan(features[:, 0]).sum() == (~(np.abs(frame.temperature.to_numpy()) <= 1e9)).sum()
    assert (np.abs(frame[list(SENSORS)].to_numpy()) > 1e9).sum() > 300


def test_river_peer_computes_the_same_features(real_sample_path):
    # The benchmark's River peer must compute what the kernel computes, or comparing speed means nothing.
    table = load_telemetry(real_sample_path)
    ids = table.column("machine_id").to_numpy()
    values = np.column_stack([table.column(s).to_numpy() for s in SENSORS])
    values[::17, 1] = np.nan  # missing values update nothing, in River as in the kernel
    table = table.set_column(3, "vibration", pa.array(values[:, 1]))
    river = RiverFeatureStream()
    rows = np.array([river.update(int(m), v.tolist()) for m, v in zip(ids, values, strict=True)])
    features = compute_features(table)[:, [FEATURE_NAMES.index(name) for name in RIVER_FEATURES]]
    assert len(RIVER_FEATURES) == 25 and np.isnan(rows).sum() > 100
    assert np.allclose(rows, features, rtol=1e-9, atol=1e-9, equal_nan=True)


def test_python_stream_baseline_agrees_too(real_sample_path):
    # The benchmark's per-sample baseline must compute the same features, or comparing speed means nothing.
    table = load_telemetry(real_sample_path)
    ids = table.column("machine_id").to_numpy()
    ts = table.column("timestamp").cast(pa.int64()).to_numpy()
    values = np.column_stack([table.column(s).to_numpy() for s in SENSORS])
    stream = PythonFeatureStream()
    rows = np.array([stream.update(int(m), int(t), v.tolist()) for m, t, v in zip(ids, ts, values, strict=True)])
    assert_close_to_oracle(compute_features(table), rows)


def test_spec_examples_by_hand():
    # Values worked out from the spec's formulas for a 3-sample machine (window not yet full).
    stream = FeatureStream()
    t0 = 1_735_891_200  # 2025-01-03 08:00 UTC, a Friday
    stream.update(1, t0, [10.0, 1.0, 50.0, 2.0, 4.0])
    stream.update(1, t0 + 60, [12.0, 1.0, 50.0, 2.0, 4.0])
    row = stream.update(1, t0 + 120, [17.0, 1.0, 50.0, -2.0, 4.0])
    named = dict(zip(FEATURE_NAMES, row.tolist(), strict=True))
    assert named["temperature"] == 17.0
    assert named["temp_sq"] == 289.0
    assert named["pres_sqrt"] == 0.0 and named["pres_log"] == 0.0  # max(x, 0)
    assert named["temp_roll_mean_5"] == 13.0
    assert named["temp_roll_std_5"] == pytest.approx(np.sqrt(26 / 3), rel=1e-15)
    assert named["temp_ewm_5"] == pytest.approx((17 + 2 * (12 + 2 * 10) / 3) / 3, rel=1e-15)
    assert named["temp_diff"] == 5.0
    assert named["temp_machine_min"] == 10.0 and named["temp_machine_max"] == 17.0
    assert named["temp_machine_range"] == 7.0
    assert named["temp_zscore_machine"] == pytest.approx(4 / (np.sqrt(26 / 3) + 1e-6), rel=1e-14)
    assert named["vib_roll_std_5"] == 0.0 and named["vib_anomaly_score"] == 0.0
    assert named["hour"] == 8 and named["day_of_week"] == 4 and named["is_weekend"] == 0 and named["shift"] == 0
    assert named["energy_x_temp"] == 68.0


# --- batch == stream, bit for bit


machine_ids = st.sampled_from([0, 7, -3, 2**62, -(2**63)])
sensor = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 0.0, -0.0]),
)
sample = st.tuples(machine_ids, st.integers(-5, 20), st.tuples(*[sensor] * 5))


@given(samples=st.lists(sample, min_size=1, max_size=60), cuts=st.lists(st.integers(1, 8), max_size=20))
def test_stream_equals_batch_bit_for_bit(samples, cuts):
    """Random interleavings of machines, missing and infinite values, late samples, micro-batch sizes."""
    # Timestamps drift forward with jitter, so some samples arrive late.
    base = 1_700_000_000
    ids = np.array([s[0] for s in samples], dtype=np.int64)
    ts = base + 60 * np.cumsum([max(0, s[1]) for s in samples]) - 60 * np.array([s[1] < 0 for s in samples]) * 30
    values = np.array([s[2] for s in samples], dtype=np.float64)

    stream = FeatureStream(capacity=1)
    rows, late = [], []
    start, k = 0, 0
    while start < len(samples):
        size = cuts[k % len(cuts)] if cuts else 1
        k += 1
        stop = min(len(samples), start + size)
        if size == 1:
            try:
                rows.append(stream.update(int(ids[start]), int(ts[start]), values[start].tolist()))
                late.append(False)
            except LateSampleError:
                rows.append(np.full(67, np.nan))
                late.append(True)
        else:
            rows.extend(stream.update_batch(ids[start:stop], ts[start:stop], values[start:stop]))
            flags = np.zeros(stop - start, bool)
            flags[stream.last_late] = True
            late.extend(flags)
        start = stop
    streamed = np.array(rows)
    late = np.array(late)
    assert stream.stats.late == late.sum()
    assert stream.stats.accepted == (~late).sum()
    assert np.isnan(streamed[late]).all()

    accepted = pa.table(
        {
            "timestamp": pa.array(ts[~late], pa.timestamp("s", tz="UTC")),
            "machine_id": ids[~late],
            **{name: values[~late, j] for j, name in enumerate(SENSORS)},
            "machine_status": np.ones((~late).sum(), dtype=np.int8),
        }
    )
    if accepted.num_rows:
        np.testing.assert_array_equal(bits(compute_features(accepted)), bits(streamed[~late]))
    missing = {name: int((~np.isfinite(values[~late, j])).sum()) for j, name in enumerate(SENSORS)}
    assert stream.stats.missing == missing


@given(samples=st.lists(sample, min_size=2, max_size=40), cut=st.integers(0, 40))
def test_snapshot_restore_continues_with_the_same_bits(samples, cut):
    cut = min(cut, len(samples))
    ids = np.array([s[0] for s in samples], dtype=np.int64)
    ts = 1_700_000_000 + 60 * np.arange(len(samples))
    values = np.array([s[2] for s in samples], dtype=np.float64)

    whole = FeatureStream(utc_offset_minutes=90)
    expected = whole.update_batch(ids, ts, values)

    first = FeatureStream(utc_offset_minutes=90)
    head = first.update_batch(ids[:cut], ts[:cut], values[:cut])
    resumed = FeatureStream.restore(first.snapshot())
    tail = resumed.update_batch(ids[cut:], ts[cut:], values[cut:])
    np.testing.assert_array_equal(bits(np.vstack([head, tail])), bits(expected))
    assert resumed.stats == whole.stats
    assert resumed.machines == whole.machines


def test_late_sample_is_rejected_and_state_untouched():
    values = [70.0, 50.0, 40.0, 3.0, 2.0]
    with_late, without = FeatureStream(), FeatureStream()
    for stream in (with_late, without):
        stream.update(1, 1000, values)
        stream.update(1, 1060, [71.0, 51.0, 41.0, 3.1, 2.1])
    with pytest.raises(LateSampleError, match="machine 1: timestamp 1059 is earlier than the last accepted 1060"):
        with_late.update(1, 1059, [99.0, 99.0, 99.0, 9.0, 9.0])
    np.testing.assert_array_equal(
        bits(with_late.update(1, 1060, values)), bits(without.update(1, 1060, values))
    )  # equal timestamps are not late
    assert with_late.snapshot() != without.snapshot()  # only the late counter differs
    assert with_late.stats.late == 1 and without.stats.late == 0
    assert with_late.stats.accepted == without.stats.accepted == 3


def test_bad_samples_raise_clear_errors():
    stream = FeatureStream()
    with pytest.raises(ValueError, match="sensors must be 5 numbers"):
        stream.update(1, 0, [1.0, 2.0])
    with pytest.raises(ValueError, match="humidity 'wet' is not a number"):
        stream.update(1, 0, [1.0, 2.0, "wet", 3.0, 4.0])
    with pytest.raises(ValueError, match="timestamp_s must be an integer"):
        stream.update(1, 1.5, [1.0, 2.0, 3.0, 3.0, 4.0])
    with pytest.raises(InvalidInputError, match=r"machine_id must be an integer, not 1\.5"):
        stream.update(1.5, 0, [1.0, 2.0, 3.0, 3.0, 4.0])
    for too_far in (2**63, -(2**63) - 1, 2**70):
        with pytest.raises(InvalidInputError, match=f"timestamp {too_far} is beyond"):
            stream.update(1, too_far, [1.0, 2.0, 3.0, 3.0, 4.0])
    assert stream.machines == ()  # nothing was applied
    row = stream.update(2, 60, [1.0, 2.0, 3.0, 3.0, 4.0])
    before = stream.state_arrays()
    with pytest.raises(InvalidInputError, match=f"machine 2: timestamp {2**64} is beyond"):
        stream.update(2, 2**64, [1.0, 2.0, 3.0, 3.0, 4.0])
    assert all(np.array_equal(a, b) for a, b in zip(stream.state_arrays(), before, strict=True))
    # numpy scalars and ints are numbers too: the same row as floats
    again = FeatureStream()
    assert np.array_equal(bits(again.update(2, np.int64(60), np.array([1, 2, 3, 3, 4]))), bits(row))
    stream = FeatureStream()
    with pytest.raises(ValueError, match=r"machine_ids: row 0: 1\.5 is not an integer"):
        stream.update_batch(np.array([1.5]), np.array([0]), np.zeros((1, 5)))
    with pytest.raises(ValueError, match=r"sensors \(n, 5\)"):
        stream.update_batch(np.array([1]), np.array([0]), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="not a FeatureStream snapshot"):
        FeatureStream.restore(b"garbage")
    assert stream.stats.accepted == 0 and stream.stats.machines == 0


def test_state_has_a_fixed_size_whatever_the_history():
    short, long = FeatureStream(), FeatureStream()
    rng = np.random.default_rng(0)
    short.update_batch(np.zeros(10, np.int64), np.arange(10), rng.normal(size=(10, 5)))
    n = 200_000
    long.update_batch(np.zeros(n, np.int64), np.arange(n), rng.normal(size=(n, 5)))
    assert len(short.snapshot()) == len(long.snapshot())
    assert short._fstate.shape == long._fstate.shape and short._istate.shape == long._istate.shape
    # and the long history's statistics are still exact (Welford, not sums of squares)
    last = long.update(0, n, [0.0] * 5)
    assert last[FEATURE_NAMES.index("temp_machine_std")] == pytest.approx(1.0, abs=0.01)


def test_many_machines_grow_the_state():
    stream = FeatureStream(capacity=1)
    ids = np.arange(1000, dtype=np.int64) * 7919 - 3_000_000
    out = stream.update_batch(ids, np.zeros(1000, np.int64), np.ones((1000, 5)))
    assert stream.stats.machines == 1000
    assert (out[:, FEATURE_NAMES.index("temp_roll_mean_5")] == 1.0).all()


def test_transformer_in_a_pipeline(real_sample_path):
    table = load_telemetry(real_sample_path)
    transformer = FeatureTransformer()
    assert list(transformer.get_feature_names_out()) == list(FEATURE_NAMES)
    np.testing.assert_array_equal(transformer.fit(table).transform(table), compute_features(table))
    model = make_pipeline(
        FeatureTransformer(),
        _FillNaN(),
        LogisticRegression(max_iter=2000),
    )
    labels = table.column("anomaly_flag").to_numpy()
    model.fit(table, labels)
    assert (model.predict(table) == labels).mean() > 0.9
    assert clone(transformer).get_params() == {"utc_offset_minutes": 0, "threads": None, "dtype": "float64"}
    small = FeatureTransformer(threads=1, dtype="float32").transform(table)
    assert small.dtype == np.float32 and np.array_equal(
        small, compute_features(table).astype(np.float32), equal_nan=True
    )


class _FillNaN(FeatureTransformer.__mro__[1], FeatureTransformer.__mro__[2]):  # TransformerMixin, BaseEstimator
    def fit(self, X, y=None):
        self.scale_ = np.nanstd(X, axis=0) + 1e-9
        self.mean_ = np.nanmean(X, axis=0)
        return self

    def transform(self, X):
        return np.nan_to_num((X - self.mean_) / self.scale_)


def test_features_table_keeps_ids_and_labels(real_sample_path):
    table = features_table(real_sample_path)
    assert table.column_names[:3] == ["timestamp", "machine_id", "machine_status"]
    assert "anomaly_flag" in table.column_names and "temperature" in table.column_names
    np.testing.assert_array_equal(
        table.column("temp_roll_std_5").to_numpy(),
        compute_features(real_sample_path)[:, FEATURE_NAMES.index("temp_roll_std_5")],
    )
