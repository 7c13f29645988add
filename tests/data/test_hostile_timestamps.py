"""Timestamps as telemetry really carries them (issue 23): text with fractions of a second, zones and epoch
seconds is read; integers in another unit, and times no stage can handle, are refused with the row and a hint."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.cli.commands import main
from engine.data.loading import load_telemetry
from engine.errors import TelemetryError


def _frame(timestamps, **overrides) -> pd.DataFrame:
    n = len(timestamps)
    data = {
        "timestamp": timestamps,
        "machine_id": [1] * n,
        "temperature": [70.0] * n,
        "vibration": [50.0] * n,
        "humidity": [40.0] * n,
        "pressure": [3.0] * n,
        "energy_consumption": [2.0] * n,
        "machine_status": [0] * n,
    }
    data.update(overrides)
    return pd.DataFrame(data)


def _seconds(table) -> list[int]:
    return table.column("timestamp").cast(pa.int64()).to_pylist()


NEW_YEAR = 1_735_689_600  # 2025-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["2025-01-01 00:00:00.123", "2025-01-01 00:00:01.999"], [NEW_YEAR, NEW_YEAR + 1]),
        (["2025-01-01T00:00:00.5Z", "2025-01-01T00:01:00Z"], [NEW_YEAR, NEW_YEAR + 60]),
        (["2025-01-01T01:00:00.250+01:00", "2025-01-01T00:00:00+01:00"], [NEW_YEAR, NEW_YEAR - 3600]),
        (["1969-12-31 23:59:59.5", "1970-01-01 00:00:00.5"], [-1, 0]),
        ([str(NEW_YEAR), f" {NEW_YEAR + 60} "], [NEW_YEAR, NEW_YEAR + 60]),
    ],
    ids=["fraction", "fraction-Z", "fraction-offset", "before-1970-floored", "epoch-seconds-text"],
)
def test_text_timestamps_with_fractions_zones_or_epoch_seconds(texts, expected):
    assert _seconds(load_telemetry(_frame(texts))) == expected


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2199, 12, 31)))
def test_any_iso_text_with_milliseconds_is_floored_like_python(moment):
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000, tzinfo=timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    expected = int(moment.replace(microsecond=0).timestamp())
    assert _seconds(load_telemetry(_frame([text]))) == [expected]


def test_epoch_milliseconds_are_refused_with_the_row_and_the_fix(tmp_path):
    stamps = [NEW_YEAR, NEW_YEAR * 1000 + 60_000]
    with pytest.raises(TelemetryError, match=r"row 1: 1735689660000 s is outside 1900-01-01\.\.2199-12-31 UTC"):
        load_telemetry(_frame(stamps))
    with pytest.raises(TelemetryError, match="reads as epoch ms: divide by 1,000"):
        load_telemetry(_frame(stamps))
    with pytest.raises(TelemetryError, match="reads as epoch us"):
        load_telemetry(_frame([NEW_YEAR * 10**6]))
    with pytest.raises(TelemetryError, match="row 0: 1735689600000 s is outside"):
        load_telemetry(_frame([str(NEW_YEAR * 1000)]))  # as text too


def test_parquet_int64_timestamps_far_away_are_one_clear_error(tmp_path):
    for value in (2**62, -(2**62), 2**63 - 1):
        path = tmp_path / "far.parquet"
        pq.write_table(pa.Table.from_pandas(_frame([NEW_YEAR, value])), path)
        with pytest.raises(TelemetryError, match=rf"far.parquet: column 'timestamp', row 1: {value} s is outside"):
            load_telemetry(path)
    timestamps = pa.array([NEW_YEAR, 2**40], pa.timestamp("s", tz="UTC"))  # a canonical table is checked too
    canonical = load_telemetry(_frame([NEW_YEAR, NEW_YEAR]))
    with pytest.raises(TelemetryError, match="row 1: 1099511627776 s is outside"):
        load_telemetry(canonical.set_column(0, "timestamp", timestamps))


def test_every_stage_handles_what_the_loader_accepts(tmp_path):
    """The extremes the loader takes (1900, 2199, huge finite sensor values) run through eda and features."""
    frame = _frame(
        ["1900-01-01 00:00:00", "1900-01-01 00:01:00", "2199-12-31 23:59:59"],
        machine_id=[1, 1, 2],
        temperature=[1e308, -1e300, 70.0],
        vibration=[5e9, 50.0, 51.0],
    )
    path = tmp_path / "odd.csv"
    frame.to_csv(path, index=False)
    assert main(["eda", "--data", str(path), "--out", str(tmp_path / "eda")]) == 0
    assert main(["features", "--data", str(path), "--out", str(tmp_path / "f.parquet")]) == 0
    features = pq.read_table(tmp_path / "f.parquet")
    assert np.isnan(features.column("temperature").to_numpy()[:2]).all()
    assert features.num_rows == 3
