"""engine.data.loading: the loader against the real sample (pandas as the independent reader), round trips, and every
kind of bad input naming file, column and row."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as paipc
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.data.loading import (
    TelemetryError,
    load_telemetry,
    load_telemetry_with_report,
    save_telemetry,
    telemetry_report,
    write_kaggle_csv,
)
from engine.data.schema import FAILURE_TYPES, LABEL_COLUMNS, REQUIRED_COLUMNS, SENSORS, TELEMETRY_SCHEMA

SAMPLE_SHA256 = "21cb7572c419aaeedac824d91d1e0b6442e7bc33a53538fffb8c8b3820d996aa"


def test_sample_is_the_documented_file(real_sample_path):
    assert hashlib.sha256(real_sample_path.read_bytes()).hexdigest() == SAMPLE_SHA256


def test_real_sample_loads_in_the_canonical_schema(real_sample_path):
    table, report = load_telemetry_with_report(real_sample_path)
    assert table.num_rows == 2231
    assert table.schema.equals(TELEMETRY_SCHEMA)
    assert report.rows == 2231
    assert report.missing == dict.fromkeys(SENSORS, 0)
    assert report.labels == LABEL_COLUMNS
    assert report.ignored_columns == ()


def test_real_sample_exact_rows(real_sample_path):
    # Values copied from the CSV text itself (lines 2, 4 and the last line of the file).
    rows = load_telemetry(real_sample_path).to_pylist()
    first, third, last = rows[0], rows[2], rows[-1]
    assert first["timestamp"].isoformat() == "2025-01-01T00:00:00+00:00"
    assert (first["machine_id"], first["temperature"], first["vibration"], first["humidity"]) == (
        39,
        78.61,
        28.65,
        79.96,
    )
    assert (first["pressure"], first["energy_consumption"], first["machine_status"]) == (3.73, 2.16, 1)
    assert (first["anomaly_flag"], first["predicted_remaining_life"], first["failure_type"]) == (
        0,
        106.0,
        "Normal",
    )
    assert (first["downtime_risk"], first["maintenance_required"]) == (0.0, 0)
    assert (third["machine_id"], third["temperature"], third["anomaly_flag"], third["downtime_risk"]) == (
        15,
        98.94,
        1,
        1.0,
    )
    assert last["timestamp"].isoformat() == "2025-01-02T13:10:00+00:00"


def test_real_sample_matches_pandas_reader(real_sample_path, real_frame):
    table = load_telemetry(real_sample_path)
    expected_seconds = pd.to_datetime(real_frame["timestamp"]).to_numpy().astype("datetime64[s]").astype("int64")
    np.testing.assert_array_equal(table.column("timestamp").cast(pa.int64()).to_numpy(), expected_seconds)
    for name in [
        "machine_id",
        *SENSORS,
        "machine_status",
        "anomaly_flag",
        "predicted_remaining_life",
        "downtime_risk",
        "maintenance_required",
    ]:
        np.testing.assert_array_equal(table.column(name).to_numpy(), real_frame[name].to_numpy(), err_msg=name)
    assert table.column("failure_type").to_pylist() == real_frame["failure_type"].tolist()
    assert table.column("failure_type").type.value_type == pa.string()
    assert table.column("failure_type").chunk(0).dictionary.to_pylist() == list(FAILURE_TYPES)


def test_csv_parquet_table_round_trip(real_sample_path, tmp_path):
    table = load_telemetry(real_sample_path)
    saved = save_telemetry(table, tmp_path / "sample.parquet")
    assert pq.read_metadata(saved).num_rows == 2231
    assert load_telemetry(saved).equals(table)
    write_kaggle_csv(table, tmp_path / "again.csv")
    assert (tmp_path / "again.csv").read_text().splitlines()[0] == real_sample_path.read_text().splitlines()[0]
    assert load_telemetry(tmp_path / "again.csv").equals(table)


def test_arrow_ipc_file_and_stream(real_sample_path, tmp_path):
    table = load_telemetry(real_sample_path)
    with paipc.new_file(tmp_path / "t.arrow", table.schema) as writer:
        writer.write_table(table)
    with paipc.new_stream(tmp_path / "t.arrows", table.schema) as writer:
        writer.write_table(table)
    assert load_telemetry(tmp_path / "t.arrow").equals(table)
    assert load_telemetry(tmp_path / "t.arrows").equals(table)


def test_pandas_frames_with_text_or_datetime_timestamps(real_sample_path, real_frame):
    table = load_telemetry(real_sample_path)
    assert load_telemetry(real_frame).equals(table)
    frame = real_frame.copy()
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    assert load_telemetry(frame).equals(table)
    frame["timestamp"] = frame["timestamp"].dt.tz_localize("Europe/Berlin")  # one hour ahead of UTC in winter
    shifted = load_telemetry(frame).column("timestamp").cast(pa.int64()).to_numpy()
    np.testing.assert_array_equal(shifted, table.column("timestamp").cast(pa.int64()).to_numpy() - 3600)


def test_zoned_text_timestamps_are_converted_to_utc():
    table = load_telemetry(_frame(timestamp=["2025-01-01T02:00:00+02:00", "2025-01-01T00:01:00Z"]))
    assert table.column("timestamp").cast(pa.int64()).to_pylist() == [1735689600, 1735689660]


def test_optional_labels_and_extra_columns():
    frame = _frame()
    frame["site"] = ["a", "b"]
    table, report = load_telemetry_with_report(frame)
    assert table.column_names == list(REQUIRED_COLUMNS)
    assert report.labels == ()
    assert report.ignored_columns == ("site",)


def test_missing_sensor_values_are_nan_and_counted(tmp_path):
    header = ",".join(REQUIRED_COLUMNS)
    lines = [
        header,
        "2025-01-01 00:00:00,1,,50,40,3,2,1",
        "2025-01-01 00:01:00,1,70,nan,40,3,2,1",
        "2025-01-01 00:02:00,1,70,50,inf,-inf,2,1",
        "2025-01-01 00:03:00,1,-5.5,50,40,3, ,0",
    ]
    path = tmp_path / "missing.csv"
    path.write_text("\n".join(lines) + "\n")
    table, report = load_telemetry_with_report(path)
    assert report.missing == {
        "temperature": 1,
        "vibration": 1,
        "humidity": 1,
        "pressure": 1,
        "energy_consumption": 1,
    }
    assert math.isnan(table.column("temperature")[0].as_py())
    assert table.column("temperature")[3].as_py() == -5.5  # negative values are data, not missing
    assert table.column("humidity").null_count == 0  # NaN, not null
    assert telemetry_report(table).missing == report.missing


BAD_CSV_CASES = [
    # (column index to change, row, new text, column named, words in the message)
    (0, 3, "2025-13-01 00:00:00", "timestamp", "cannot parse '2025-13-01 00:00:00' as a timestamp"),
    (0, 5, "", "timestamp", "value is missing"),
    (1, 2, "1.5", "machine_id", "cannot parse '1.5' as an integer"),
    (1, 7, "x", "machine_id", "cannot parse 'x' as an integer"),
    (2, 4, "warm", "temperature", "cannot parse 'warm' as a number"),
    (5, 6, "3,1", "pressure", None),  # an extra field: pyarrow's own CSV error, still names the file
    (7, 3, "3", "machine_status", "3 is outside 0..2"),
    (7, 8, "-1", "machine_status", "-1 is outside 0..2"),
    (8, 1, "2", "anomaly_flag", "2 is outside 0 or 1"),
    (9, 2, "-4", "predicted_remaining_life", "must be a finite number of hours >= 0"),
    (10, 4, "Exploded", "failure_type", "unknown failure type 'Exploded'"),
    (11, 6, "1.5", "downtime_risk", "must be a probability in [0, 1]"),
    (12, 5, "yes", "maintenance_required", "cannot parse 'yes' as an integer"),
]


@pytest.mark.parametrize(("field", "row", "text", "column", "words"), BAD_CSV_CASES)
def test_bad_csv_values_name_file_column_and_row(real_sample_path, tmp_path, field, row, text, column, words):
    lines = real_sample_path.read_text().splitlines()[:12]
    fields = lines[row + 1].split(",")
    fields[field] = text
    lines[row + 1] = ",".join(fields)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TelemetryError) as caught:
        load_telemetry(path)
    message = str(caught.value)
    assert str(path) in message
    if words is None:
        assert "cannot read as CSV" in message
        return
    assert f"column {column!r}" in message
    assert f"row {row} (line {row + 2})" in message
    assert words in message


def test_missing_required_column_is_named(real_frame):
    with pytest.raises(TelemetryError, match=r"<pandas.DataFrame>: missing required column\(s\) 'vibration'"):
        load_telemetry(real_frame.drop(columns=["vibration"]))


def test_empty_file_and_header_only(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(TelemetryError, match=r"empty\.csv: empty file"):
        load_telemetry(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(REQUIRED_COLUMNS) + "\n")
    with pytest.raises(TelemetryError, match=r"header\.csv: no data rows"):
        load_telemetry(header_only)
    with pytest.raises(TelemetryError, match="no such file"):
        load_telemetry(tmp_path / "absent.csv")


def test_bad_in_memory_values_name_the_row():
    with pytest.raises(TelemetryError, match=r"column 'machine_status', row 1: value is missing"):
        load_telemetry(_frame(machine_status=[1.0, float("nan")]))
    with pytest.raises(TelemetryError, match=r"column 'machine_id', row 0: 1.5 is not an integer"):
        load_telemetry(_frame(machine_id=[1.5, 2.0]))
    with pytest.raises(TelemetryError, match="has type"):
        load_telemetry(_frame(temperature=[[1.0], [2.0]]))


def _frame(**overrides) -> pd.DataFrame:
    data = {
        "timestamp": ["2025-01-01 00:00:00", "2025-01-01 00:01:00"],
        "machine_id": [1, 2],
        "temperature": [70.0, 71.0],
        "vibration": [50.0, 51.0],
        "humidity": [40.0, 41.0],
        "pressure": [3.0, 3.1],
        "energy_consumption": [2.0, 2.1],
        "machine_status": [1, 0],
    }
    data.update(overrides)
    return pd.DataFrame(data)


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
sensor_value = st.one_of(finite, st.just(float("nan")))


@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 4_000_000_000),
            st.integers(-(2**62), 2**62),
            st.tuples(*[sensor_value] * 5),
            st.integers(0, 2),
            st.sampled_from(FAILURE_TYPES),
            st.floats(0.0, 1.0),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_any_valid_table_round_trips_through_csv_and_parquet(tmp_path_factory, rows):
    folder = tmp_path_factory.mktemp("round")
    columns = {
        "timestamp": pa.array([r[0] for r in rows], pa.timestamp("s", tz="UTC")),
        "machine_id": pa.array([r[1] for r in rows], pa.int64()),
    }
    for j, name in enumerate(SENSORS):
        columns[name] = pa.array([r[2][j] for r in rows], pa.float64())
    columns["machine_status"] = pa.array([r[3] for r in rows], pa.int8())
    columns["failure_type"] = pa.array([r[4] for r in rows])
    columns["downtime_risk"] = pa.array([r[5] for r in rows], pa.float64())
    original = load_telemetry(pa.table(columns))
    for path in (
        write_kaggle_csv(original, folder / "t.csv"),
        save_telemetry(original, folder / "t.parquet"),
    ):
        loaded = load_telemetry(path)
        assert loaded.schema.equals(original.schema)
        for name in original.column_names:
            a, b = original.column(name), loaded.column(name)
            if name in SENSORS:
                np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())  # NaN == NaN here
            else:
                assert a.equals(b), name


def test_sub_second_timestamps_are_floored_to_the_second():
    frame = _frame(timestamp=pd.to_datetime(["1969-12-31 23:59:58.500", "2025-01-01 00:00:00.999"]))
    seconds = load_telemetry(frame).column("timestamp").cast(pa.int64()).to_pylist()
    assert seconds == [-2, 1735689600]
