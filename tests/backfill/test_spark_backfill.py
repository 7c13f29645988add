"""The Spark backfill in local[2] against the single-process oracles, bit for bit: compute_features for the
features, Bundle.predict (each model's own library) for the scores, a FeatureStream fed one sample at a time for
the final states; whatever the partitions and the Arrow batch sizes. And resume after a kill, and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pytest

from engine.backfill.job import BackfillRequest, backfill, read_backfill
from engine.backfill.outputs import Staging
from engine.backfill.spark_job import run_spark_job
from engine.backfill.spark_tasks import TaskConfig
from engine.backfill.states import read_states
from engine.data.loading import save_telemetry
from engine.errors import BundleError, TelemetryError
from engine.scoring.batch import scores_table
from tests.backfill.history import oracle_features, oracle_states, oracle_table, skewed_history, write_history
from tests.backfill.test_backfill_local import assert_states_equal, bits, feature_block


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spark_history")
    paths = write_history(skewed_history(np.random.default_rng(33), rows=2_000), folder / "input")
    return paths, oracle_features(paths), oracle_states(paths)


@pytest.mark.parametrize("partitions", [1, 3, 7])
@pytest.mark.parametrize("batch_rows", [1, 7, 10_000])
def test_spark_features_and_states_equal_the_single_process_paths(spark, history, tmp_path, partitions, batch_rows):
    paths, expected, stream = history
    request = BackfillRequest(input=paths[0].parents[1], output=tmp_path / "out", engine="spark",
                              states=tmp_path / "st", partitions=partitions, arrow_batch_rows=batch_rows)  # fmt: skip
    result = backfill(request, session=spark)
    out = read_backfill(tmp_path / "out")
    table, order = oracle_table(paths)
    assert result.rows == table.num_rows and result.partitions == partitions
    assert np.array_equal(out.column("machine_id").to_numpy(), table.column("machine_id").to_numpy()[order])
    assert np.array_equal(bits(feature_block(out)), bits(expected))
    assert_states_equal(read_states(tmp_path / "st"), stream)
    parts = sorted(p.name for p in (tmp_path / "st").iterdir())
    assert len(parts) <= partitions and all(p.startswith("part-") for p in parts)


def test_spark_scores_equal_bundle_predict(spark, history, compiled, tmp_path):
    bundle = compiled[0]
    paths = history[0]
    request = BackfillRequest(input=paths[0].parents[1], output=tmp_path / "out", engine="spark", bundle=bundle.path,
                              partitions=3, arrow_batch_rows=7)  # fmt: skip
    backfill(request, session=spark)
    out = read_backfill(tmp_path / "out")
    table, order = oracle_table(paths)
    expected = scores_table(bundle, table, bundle.predict(table)).take(order)  # LightGBM's and sklearn's own
    assert out.drop_columns(["source_file", "source_row"]).column_names == expected.column_names
    for name in expected.column_names:
        got, want = out.column(name), expected.column(name)
        if pa.types.is_floating(want.type):
            assert np.array_equal(bits(got.to_numpy()), bits(want.to_numpy())), name
        else:
            assert got.to_pylist() == want.to_pylist(), name


def test_a_killed_job_resumes_to_the_same_output(spark, tmp_path):
    table = skewed_history(np.random.default_rng(4), rows=30_000)
    (tmp_path / "in").mkdir()
    save_telemetry(table, tmp_path / "in" / "all.parquet")
    clean = BackfillRequest(input=tmp_path / "in", output=tmp_path / "clean", engine="spark", partitions=14,
                            states=tmp_path / "clean_states")  # fmt: skip
    backfill(clean, session=spark)
    command = [sys.executable, "-m", "engine.cli", "backfill", "--engine", "spark", "--master", "local[2]",
               "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--states", str(tmp_path / "st"),
               "--partitions", "14"]  # fmt: skip
    # Batches of one row: slow enough to be killed part way; a part's bytes do not depend on the batch size.
    job = subprocess.Popen(
        [*command, "--arrow-batch-rows", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    done = tmp_path / "out.partial" / "done"
    deadline = time.monotonic() + 300
    while not (done.is_dir() and any(done.glob("part-*.json"))) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(job.pid, signal.SIGKILL)  # the CLI, its JVM and the Python workers
    job.wait()
    committed = len(Staging(tmp_path / "out").committed())
    assert 1 <= committed < 14 and not (tmp_path / "out").exists()
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed with {committed} partition(s) already committed" in resumed.stdout
    resumed_rows, clean_rows = read_backfill(tmp_path / "out"), read_backfill(tmp_path / "clean")
    assert resumed_rows.column_names == clean_rows.column_names and resumed_rows.num_rows == clean_rows.num_rows
    for name in clean_rows.column_names:
        got, want = resumed_rows.column(name), clean_rows.column(name)
        same = np.array_equal(bits(got), bits(want)) if pa.types.is_floating(want.type) else got.equals(want)
        assert same, name
    records = [json.loads((d / "_backfill.json").read_text())["partition_records"] for d in (tmp_path / "out",
               tmp_path / "clean")]  # fmt: skip
    assert records[0] == records[1]  # the same bytes in every part (their SHA-256)
    assert read_states(tmp_path / "st") == read_states(tmp_path / "clean_states")


def test_a_bad_value_found_by_an_executor_is_one_error_and_no_output(spark, tmp_path):
    (tmp_path / "in").mkdir()
    save_telemetry(skewed_history(np.random.default_rng(6), rows=500), tmp_path / "in" / "a.parquet")
    rows = ["timestamp,machine_id,temperature,vibration,humidity,pressure,energy_consumption,machine_status"]
    rows += [f"2025-01-01 00:{i:02d}:00,1,70,50,40,3,2,1" for i in range(50)]
    rows[41] = "2025-01-01 00:40:00,1,70,50,40,3,2,7"
    (tmp_path / "in" / "b.csv").write_text("\n".join(rows) + "\n")
    request = BackfillRequest(input=tmp_path / "in", output=tmp_path / "out", engine="spark", partitions=3,
                              states=tmp_path / "st")  # fmt: skip
    with pytest.raises(TelemetryError, match=r"b\.csv: .*machine_status.*row 40") as caught:
        backfill(request, session=spark)
    assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_a_missing_column_fails_before_the_job(spark, tmp_path):
    (tmp_path / "in").mkdir()
    save_telemetry(skewed_history(np.random.default_rng(6), rows=50), tmp_path / "in" / "a.parquet")
    (tmp_path / "in" / "b.csv").write_text("timestamp,machine_id,temperature\n2025-01-01 00:00:00,1,70\n")
    with pytest.raises(TelemetryError, match=r"b\.csv: missing required column\(s\) vibration, humidity"):
        backfill(BackfillRequest(input=tmp_path / "in", output=tmp_path / "out", engine="spark"), session=spark)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_an_executor_that_cannot_load_the_bundle_fails_clearly(spark, compiled, tmp_path):
    bundle = compiled[0]
    save_telemetry(skewed_history(np.random.default_rng(9), rows=50), tmp_path / "a.parquet")
    staging = Staging(tmp_path / "out")
    staging.start({"test": 1}, resume=False)
    config = TaskConfig(staging=str(staging.root), files=(str(tmp_path / "a.parquet"),), labels=(),
                        utc_offset_minutes=bundle.utc_offset_minutes, bundle_name=bundle.path.name,
                        bundle_digest="0" * 64)  # a bundle other than the driver's  # fmt: skip
    with pytest.raises(BundleError, match=r"executor .*: cannot load the bundle bundle: its manifest digest"):
        run_spark_job(spark, staging, config, partitions=2, done=set(), bundle_path=bundle.path)
    assert len(staging.committed()) == 0
