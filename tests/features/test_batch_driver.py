"""The batch driver: threads, float32 output, a caller's buffer, the O(n) time-order check, the id-to-slot paths,
and the check that lets a table already in the schema through without a copy. The oracle is pandas."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.data.loading import already_canonical, load_telemetry, load_telemetry_with_report
from engine.data.schema import LABEL_COLUMNS, SENSORS
from engine.data.synthetic import generate
from engine.errors import InvalidInputError, TelemetryError
from engine.features.batch import compute_features, features_table
from engine.features.batch_driver import DENSE_ID_SPAN
from kernels.names import FEATURE_NAMES
from tests.oracles.features import assert_close_to_oracle, bits, pandas_features


def _fleet(rows: int = 6_000, machines: int = 9, seed: int = 3) -> pa.Table:
    return load_telemetry(generate(rows, machines=machines, mode="fleet", seed=seed))


def _with_ids(table: pa.Table, ids: np.ndarray) -> pa.Table:
    return table.set_column(table.schema.get_field_index("machine_id"), "machine_id", pa.array(ids, pa.int64()))


# --- threads


@pytest.mark.parametrize("order", ["arrival", "shuffled"])
def test_every_thread_count_gives_the_oracle_and_the_same_bits(order):
    table = _fleet()
    if order == "shuffled":  # not in time order: the driver sorts
        table = table.take(np.random.default_rng(0).permutation(table.num_rows))
    oracle = pandas_features(table)
    one = compute_features(table, threads=1)
    assert_close_to_oracle(one, oracle)
    for threads in (2, 3, 8, 100):
        assert np.array_equal(bits(compute_features(table, threads=threads)), bits(one)), threads


machine = st.sampled_from([0, 1, 5, -3, 2**62, -(2**63), 2**63 - 1])
rows = st.lists(
    st.tuples(machine, st.integers(0, 30), st.one_of(st.floats(-1e3, 1e3), st.just(float("nan")))),
    min_size=1,
    max_size=80,
)


@given(rows=rows, threads=st.integers(1, 4), shuffle=st.booleans())
def test_random_fleets_agree_with_the_oracle_on_any_thread_count(rows, threads, shuffle):
    """Ids across the whole int64 range (the np.unique path) or a small one, equal and unordered timestamps."""
    n = len(rows)
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    stamps = 1_700_000_000 + 60 * np.array([r[1] for r in rows], dtype=np.int64)
    if not shuffle:
        stamps = np.sort(stamps)
    value = np.array([r[2] for r in rows])
    table = pa.table(
        {
            "timestamp": pa.array(stamps, pa.int64()).cast(pa.timestamp("s", tz="UTC")),
            "machine_id": ids,
            **{name: value * (k + 1) for k, name in enumerate(SENSORS)},
            "machine_status": np.ones(n, np.int8),
        }
    )
    assert_close_to_oracle(compute_features(table, threads=threads), pandas_features(table))


def test_small_and_wide_id_ranges_give_the_same_features():
    table = _fleet(machines=5)
    ids = table.column("machine_id").to_numpy()
    wide = ids.copy()
    wide[ids == ids.max()] = ids.min() + DENSE_ID_SPAN * 10  # wider than the lookup table: np.unique's slots
    narrow = compute_features(table)
    assert_close_to_oracle(narrow, pandas_features(table))
    assert np.array_equal(bits(compute_features(_with_ids(table, wide))), bits(narrow))


def test_bad_thread_counts_are_refused():
    table = _fleet(rows=100)
    for threads in (0, -1, 1.5, True, "2"):
        with pytest.raises(InvalidInputError, match="threads must be a positive integer"):
            compute_features(table, threads=threads)


# --- float32, and the caller's buffer


def test_float32_output_is_the_float64_features_rounded_once():
    table = _fleet()
    full = compute_features(table, threads=1)
    half = compute_features(table, dtype=np.float32)
    assert half.dtype == np.float32
    assert np.array_equal(half.view(np.uint32), full.astype(np.float32).view(np.uint32))
    # the interactions too: products of the float64 values, not of the float32 ones
    j = FEATURE_NAMES.index("temp_x_vib")
    assert np.array_equal(half[:, j], (full[:, 0] * full[:, 1]).astype(np.float32), equal_nan=True)


def test_a_callers_buffer_is_filled_and_returned():
    table = _fleet()
    expected = compute_features(table)
    buffer = np.full((table.num_rows, 67), 123.0)
    result = compute_features(table, out=buffer, threads=2)
    assert result is buffer
    assert np.array_equal(bits(buffer), bits(expected))
    buffer32 = np.zeros((table.num_rows, 67), np.float32)
    assert compute_features(table, dtype="float32", out=buffer32) is buffer32


def test_a_wrong_buffer_is_refused_and_left_alone():
    table = _fleet(rows=50)
    n = table.num_rows
    readonly = np.zeros((n, 67))
    readonly.flags.writeable = False
    cases = {
        "shape": np.zeros((n + 1, 67)),
        "float64": np.zeros((n, 67), np.float32),
        "C-contiguous": np.zeros((67, n)).T,
        "read-only": readonly,
    }
    for words, out in cases.items():
        before = out.copy()
        with pytest.raises(InvalidInputError, match=f"out must be a writable C-contiguous float64 array.*{n}, 67"):
            compute_features(table, out=out)
        assert np.array_equal(out, before), words
    with pytest.raises(InvalidInputError, match="out must be a numpy array, not list"):
        compute_features(table, out=[[0.0] * 67] * n)
    with pytest.raises(InvalidInputError, match="dtype must be float64 or float32, not int64"):
        compute_features(table, dtype=np.int64)


def test_features_table_columns_are_the_features():
    table = _fleet(rows=2_000)
    features = compute_features(table)
    result = features_table(table, dtype=np.float32)
    for j, name in enumerate(FEATURE_NAMES):
        assert np.array_equal(result.column(name).to_numpy(), features[:, j].astype(np.float32), equal_nan=True)
    assert result.column("machine_status").equals(table.column("machine_status"))


# --- tables already in the schema


def _buffer_addresses(table: pa.Table) -> list[int]:
    return [
        buffer.address for column in table.columns for chunk in column.chunks for buffer in chunk.buffers() if buffer
    ]


def test_a_loaded_table_is_returned_as_is():
    table = _fleet(rows=500)
    assert already_canonical(table)
    assert load_telemetry(table) is table
    again, report = load_telemetry_with_report(table)
    assert again is table and report.rows == table.num_rows and report.labels == LABEL_COLUMNS
    # a table with the schema's types but nullable fields and metadata (as from pandas): its columns, not copied
    loose = pa.table(table.columns, names=table.column_names).replace_schema_metadata({"from": "elsewhere"})
    assert loose.schema.field("timestamp").nullable and already_canonical(loose)
    loaded = load_telemetry(loose)
    assert loaded.schema.equals(table.schema) and _buffer_addresses(loaded) == _buffer_addresses(loose)
    assert report.missing == {n: int(np.isnan(table.column(n).to_numpy()).sum()) for n in SENSORS}


def test_tables_in_the_schema_with_bad_values_take_the_converting_path():
    table = _fleet(rows=300)
    temperature = table.column("temperature").to_numpy().copy()
    assert np.isfinite(temperature[7])
    missing_before = int(np.isnan(temperature).sum())
    temperature[7] = np.inf
    with_inf = table.set_column(2, "temperature", pa.array(temperature))
    assert not already_canonical(with_inf)
    loaded, report = load_telemetry_with_report(with_inf)
    assert np.isnan(loaded.column("temperature").to_numpy()[7]) and report.missing["temperature"] == missing_before + 1

    status = table.column("machine_status").to_numpy().copy()
    status[11] = 5
    index = table.schema.get_field_index("machine_status")
    bad_status = table.set_column(index, "machine_status", pa.array(status, pa.int8()))
    assert not already_canonical(bad_status)
    with pytest.raises(TelemetryError, match=r"machine_status.*row 11.*5 is outside 0\.\.2"):
        compute_features(bad_status)

    risk = table.column("downtime_risk").to_numpy().copy()
    risk[3] = 1.5
    index = table.schema.get_field_index("downtime_risk")
    with pytest.raises(TelemetryError, match=r"downtime_risk.*row 3"):
        compute_features(table.set_column(index, "downtime_risk", pa.array(risk)))


def test_chunked_and_reordered_tables_give_the_same_features():
    table = _fleet(rows=3_000)
    expected = compute_features(table)
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=700))
    assert chunked.column("temperature").num_chunks > 1 and already_canonical(chunked)
    assert np.array_equal(bits(compute_features(chunked)), bits(expected))
    reordered = table.select(list(reversed(table.column_names)))
    assert not already_canonical(reordered)
    assert np.array_equal(bits(compute_features(reordered)), bits(expected))
