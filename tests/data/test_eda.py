"""engine.data.eda: the summary and statistics agree with pandas on the real sample; plots are real PNGs."""

from __future__ import annotations

import csv

import numpy as np

from engine.data.eda import run_eda
from engine.data.schema import SENSORS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_eda_of_the_real_sample(real_sample_path, real_frame, tmp_path):
    result = run_eda(real_sample_path, tmp_path / "eda", title="Real sample")
    names = sorted(p.name for p in result.files)
    assert names == [
        "correlation.png",
        "distributions_by_label.png",
        "sensor_stats.csv",
        "sensors_timeseries.png",
        "summary.md",
    ]
    for path in result.files:
        assert path.stat().st_size > 0
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG_MAGIC
            assert path.stat().st_size > 10_000  # a real chart, not an empty canvas

    summary = result.summary.read_text()
    assert "| rows | 2,231 |" in summary
    assert "| machines | 50 |" in summary
    assert "2025-01-01 00:00 to 2025-01-02 13:10 UTC" in summary
    assert f"| anomaly_flag = 1 | {real_frame.anomaly_flag.mean():.2%} |" in summary
    assert f"| maintenance_required = 1 | {real_frame.maintenance_required.mean():.2%} |" in summary
    for name in (
        "sensors_timeseries.png",
        "distributions_by_label.png",
        "correlation.png",
        "sensor_stats.csv",
    ):
        assert f"({name})" in summary

    with open(result.out_dir / "sensor_stats.csv") as f:
        rows = {row["sensor"]: row for row in csv.DictReader(f)}
    for sensor in SENSORS:
        column = real_frame[sensor]
        assert float(rows[sensor]["mean"]) == float(f"{column.mean():.4g}")
        assert float(rows[sensor]["std"]) == float(f"{column.std(ddof=0):.4g}")
        assert float(rows[sensor]["p95"]) == float(f"{np.percentile(column, 95):.4g}")
        assert float(rows[sensor]["max"]) == float(f"{column.max():.4g}")
        assert rows[sensor]["missing"] == "0"


def test_eda_counts_missing_values_and_works_without_labels(real_frame, tmp_path):
    frame = real_frame.drop(
        columns=[
            "anomaly_flag",
            "predicted_remaining_life",
            "failure_type",
            "downtime_risk",
            "maintenance_required",
        ]
    ).copy()
    frame.loc[[3, 9, 27], "pressure"] = np.nan
    result = run_eda(frame, tmp_path)
    assert result.stats["pressure"]["missing"] == 3
    assert result.stats["pressure"]["count"] == 2228
    assert "Missing sensor values (empty, NaN or infinite): 3 in all." in result.summary.read_text()
    assert "anomaly_flag" not in result.summary.read_text()
