"""A bundle trained at UTC+60 min scores every sample in the local time it was trained on, on every path: predict
with each backend, the stream scorer (C and Python), the replay, the C library's example program; and
``iotengine train --utc-offset-minutes`` records the offset.

The models learn labels that depend on the local hour alone, so a path that used UTC would be wrong for a sixth
of the day; the oracle of the local hour is Python's datetime with a fixed timezone.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from compile.edge import make
from engine.bundle.format import Bundle, TaskModel
from engine.cli import main
from engine.data.loading import save_telemetry, write_kaggle_csv
from engine.data.synthetic import FLEET_INTERVAL_S, generate
from engine.errors import InvalidInputError
from engine.models.cross_validation import fit_model
from engine.models.tasks import TASKS, inputs_and_targets
from engine.models.zoo import lightgbm_candidate
from engine.stream.replay import Replay
from engine.stream.scorer import StreamScorer
from engine.stream.sources import ReplaySource
from kernels.names import FEATURE_NAMES
from tests.oracles.float32_splits import FP32_TOLERANCE, nearest_float32, rows_that_may_flip
from tests.oracles.scores import assert_scores_close
from tests.samples import telemetry_arrays

OFFSET = 60
HOUR = FEATURE_NAMES.index("hour")
TOLERANCE = 1e-12  # the C path: features within a few ulp of Numba's (the hour feature is exact)


def local_hours(table, offset_minutes: int) -> np.ndarray:
    zone = timezone(timedelta(minutes=offset_minutes))
    stamps = table.column("timestamp").cast("int64").to_pylist()
    return np.array([datetime.fromtimestamp(s, tz=zone).hour for s in stamps])


def morning(hours: np.ndarray) -> np.ndarray:
    return ((hours >= 8) & (hours < 12)).astype(int)


@pytest.fixture(scope="module")
def local_time_bundle(tmp_path_factory) -> Bundle:
    table = generate(
        6_000, mode="fleet", machines=10, seed=41, interval_s=FLEET_INTERVAL_S
    )  # 50 hours at 5 minutes: every hour, twice
    X, _ = inputs_and_targets(table, utc_offset_minutes=OFFSET)
    hours = local_hours(table, OFFSET)
    labels = {"binary": morning(hours), "multiclass": hours // 5, "regression": hours.astype(np.float64)}
    models = {
        task.name: TaskModel(task.name, "lightgbm", fit_model(lightgbm_candidate(task.kind), X, labels[task.kind]))
        for task in TASKS
    }
    folder = tmp_path_factory.mktemp("utc") / "bundle"
    Bundle.write(folder, models, sets={"lightgbm": models}, utc_offset_minutes=OFFSET)
    assert main(["compile", "--bundle", str(folder)]) == 0
    return Bundle.load(folder)


@pytest.fixture(scope="module")
def samples():
    return generate(
        1_200, mode="fleet", machines=4, seed=42, interval_s=FLEET_INTERVAL_S
    )  # other machines and days than the training rows


def test_the_reference_uses_the_local_hour(local_time_bundle, samples):
    bundle = local_time_bundle
    assert bundle.utc_offset_minutes == OFFSET
    assert np.array_equal(bundle.inputs(samples)[:, HOUR], local_hours(samples, OFFSET))
    decisions = (bundle.predict(samples)["anomaly_flag"] >= 0.5).astype(int)
    assert np.mean(decisions == morning(local_hours(samples, OFFSET))) > 0.99
    assert np.mean(decisions == morning(local_hours(samples, 0))) < 0.95  # UTC would be visibly wrong


@pytest.mark.parametrize("backend", ["native", "iot", "onnx", "c"])
def test_every_predict_backend_scores_in_local_time(local_time_bundle, samples, backend):
    bundle = local_time_bundle
    reference = bundle.predict(samples)
    rows, tolerance = np.ones(samples.num_rows, dtype=bool), TOLERANCE
    if backend == "onnx":  # float32: rows where rounding flips a split are the common backend test's business
        X = bundle.inputs(samples)
        for task in bundle.tasks:
            rows &= ~rows_that_may_flip(bundle.model(task).booster, X, nearest_float32)
        tolerance = FP32_TOLERANCE * 24  # remaining life is in hours, up to 23
        assert rows.mean() > 0.5
    got = bundle.predict(samples, backend=backend)
    assert_scores_close(got, {name: column[rows] for name, column in reference.items()}, tolerance, rows=rows)


@pytest.mark.parametrize("backend", ["c", "python"])
def test_the_stream_scorer_and_its_inputs_are_in_local_time(local_time_bundle, samples, backend):
    scorer = StreamScorer(local_time_bundle, backend=backend)
    assert scorer.utc_offset_minutes == OFFSET
    got = scorer.score_batch(*telemetry_arrays(samples), remember=True)
    assert_scores_close(got, local_time_bundle.predict(samples), TOLERANCE)
    rows = np.arange(0, samples.num_rows, 97)
    assert np.array_equal(scorer.last_batch_inputs(rows)[:, HOUR], local_hours(samples, OFFSET)[rows])


def test_the_replay_scores_in_local_time(local_time_bundle, samples, tmp_path):
    source = ReplaySource.from_table(samples, "samples", {"kind": "test", "seed": 42})
    Replay(local_time_bundle, source, scores_path=tmp_path / "scores.csv").run()
    scores = pd.read_csv(tmp_path / "scores.csv")
    expected = local_time_bundle.predict(samples)
    assert len(scores) == samples.num_rows and not scores["late"].any()
    for task in ("anomaly_flag", "maintenance_required", "downtime_risk", "predicted_remaining_life"):
        assert np.max(np.abs(scores[task].to_numpy() - expected[task])) <= 1e-12, task


def test_the_c_example_program_scores_in_local_time(local_time_bundle, samples, tmp_path):
    source = tmp_path / "src"
    shutil.copytree(local_time_bundle.path / "edge" / "src", source)
    assert f"#define IOT_UTC_OFFSET_MINUTES {OFFSET}" in (source / "iotengine.h").read_text()
    make(source, "iotengine_example")
    csv_text = write_kaggle_csv(samples, tmp_path / "samples.csv").read_text()
    example = str(source / "iotengine_example")
    done = subprocess.run([example, "--features"], input=csv_text, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    features = pd.read_csv(io.StringIO(done.stdout)).iloc[:, 3:].to_numpy()
    assert np.array_equal(features[:, HOUR], local_hours(samples, OFFSET))
    done = subprocess.run([example], input=csv_text, capture_output=True, text=True)
    got = pd.read_csv(io.StringIO(done.stdout))
    expected = local_time_bundle.predict(samples)
    assert np.max(np.abs(got["anomaly"].to_numpy() - expected["anomaly_flag"])) <= TOLERANCE


def test_train_records_the_offset_and_every_offset_is_checked(tmp_path):
    data = save_telemetry(generate(1_500, seed=5), tmp_path / "kaggle.parquet")
    out = tmp_path / "out"
    assert main(["train", "--data", str(data), "--out", str(out), "--folds", "2", "--utc-offset-minutes", "60"]) == 0
    bundle = Bundle.load(out / "bundle")
    assert bundle.utc_offset_minutes == 60
    assert np.array_equal(bundle.inputs(data)[:, HOUR], local_hours(generate(1_500, seed=5), 60))
    with pytest.raises(SystemExit):  # argparse: outside Python's one day
        main(["train", "--data", str(data), "--out", str(out), "--utc-offset-minutes", "1440"])
    with pytest.raises(InvalidInputError, match="within one day"):
        Bundle.write(tmp_path / "bad", {}, utc_offset_minutes=-1440)
