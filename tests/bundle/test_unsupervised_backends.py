"""The unsupervised detector in every backend: its regressors compiled (tl2cgen, iotengine's generator, the C
library) give LightGBM's predictions bit for bit, ONNX within float32 (int8: within its reported drift), and the
streaming scorer and the batch path give the same residuals and scores.

Oracles: LightGBM's own boosters (the bundle's model files) for the regressors' predictions.
"""

from __future__ import annotations

import json
import shutil

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from compile.edge_binding import SCORES_DTYPE
from engine.bundle.edge import build_edge, edge_library
from engine.bundle.files import write_manifest
from engine.bundle.onnx import unsupervised_drift
from engine.cli.commands import main
from engine.data.synthetic import FLEET_INTERVAL_S, generate
from engine.models.autoencoder import RESIDUAL_NAMES, SCORE_NAME, detector_inputs, detector_inputs_and_targets
from engine.stream.replay import Replay
from engine.stream.scorer import StreamScorer
from engine.stream.sources import fleet_source
from kernels.names import SENSORS
from tests.oracles.float32_splits import FP32_TOLERANCE, nearest_float32, rows_that_may_flip
from tests.samples import telemetry_arrays


@pytest.fixture(scope="module")
def held_out():
    # 20 other machines over 50 hours: long enough for degradations, so the anomaly labels have both classes
    table = generate(12_000, mode="fleet", machines=20, seed=23, interval_s=FLEET_INTERVAL_S)
    assert 0 < np.mean(table.column("anomaly_flag").to_numpy()) < 0.5
    return table


def _boosters(bundle) -> dict[str, tuple[lgb.Booster, list[int]]]:
    entries = bundle.set_entries("unsupervised")
    out = {}
    for sensor in SENSORS:
        text = bundle.verified_bytes(entries[sensor]["file"]).decode()
        out[sensor] = (lgb.Booster(model_str=text), entries[sensor]["columns"])
    return out


@pytest.mark.parametrize("backend", ["native", "iot"])
def test_compiled_regressors_are_lightgbm_bit_for_bit(compiled, held_out, backend):
    bundle = compiled[0]
    D = detector_inputs(held_out)
    section = bundle.unsupervised
    got = bundle.unsupervised_outputs(D, backend)
    for s, (sensor, (booster, columns)) in enumerate(_boosters(bundle).items()):
        predicted = booster.predict(D[:, columns])  # LightGBM itself
        residual = (D[:, s] - predicted - section["center"][s]) / section["scale"][s]
        residual[np.isnan(D[:, s])] = np.nan
        assert np.array_equal(got[RESIDUAL_NAMES[s]], residual, equal_nan=True), sensor
    magnitude = np.abs(np.column_stack([got[name] for name in RESIDUAL_NAMES]))
    assert np.array_equal(got[SCORE_NAME], np.nanmax(magnitude, axis=1), equal_nan=True)


def test_the_c_library_and_the_stream_give_the_batch_residuals(compiled, held_out):
    bundle = compiled[0]
    reference = bundle.predict(held_out)
    in_c = bundle.predict(held_out, backend="c")
    arrays = telemetry_arrays(held_out)
    streams = {backend: StreamScorer(bundle, backend=backend) for backend in ("c", "python")}
    for name in (SCORE_NAME, *RESIDUAL_NAMES):
        assert np.nanmax(np.abs(in_c[name] - reference[name])) <= 1e-12, name
    for backend, scorer in streams.items():
        half = held_out.num_rows // 2
        first = scorer.score_batch(*(a[:half] for a in arrays))
        second = scorer.score_batch(*(a[half:] for a in arrays))
        for name in (SCORE_NAME, *RESIDUAL_NAMES):
            joined = np.concatenate([first[name], second[name]])
            assert np.nanmax(np.abs(joined - reference[name])) <= 1e-12, (backend, name)
    one = StreamScorer(bundle, backend="c")
    for i in range(200):
        row = one.score(int(arrays[0][i]), int(arrays[1][i]), arrays[2][i].tolist(), int(arrays[3][i]))
        assert row[SCORE_NAME] == pytest.approx(reference[SCORE_NAME][i], abs=1e-12, nan_ok=True)
        assert [row[name] for name in RESIDUAL_NAMES] == pytest.approx(
            [reference[name][i] for name in RESIDUAL_NAMES], abs=1e-12, nan_ok=True
        )


def test_onnx_fp32_is_lightgbm_within_float32_and_int8_within_its_reported_drift(compiled, held_out):
    bundle = compiled[0]
    D, y = detector_inputs_and_targets(held_out)
    section = bundle.unsupervised
    reference = bundle.unsupervised_outputs(D, "lightgbm")
    fp32 = bundle.unsupervised_outputs(D, "onnx")
    boosters = _boosters(bundle)
    stable = np.ones(len(D), dtype=bool)
    for booster, columns in boosters.values():
        stable &= ~rows_that_may_flip(booster, D[:, columns], nearest_float32)
    assert stable.mean() > 0.5
    for s, (booster, columns) in enumerate(boosters.values()):
        largest = float(np.abs(booster.predict(D[:, columns])).max())
        tolerance = FP32_TOLERANCE * largest / section["scale"][s]  # float32 sums, relative to the sensor's size
        diff = np.nanmax(np.abs(fp32[RESIDUAL_NAMES[s]][stable] - reference[RESIDUAL_NAMES[s]][stable]))
        assert diff <= tolerance, (SENSORS[s], diff, tolerance)
    rows = {row["runtime"]: row for row in unsupervised_drift(bundle, D, y["anomaly_flag"])}
    assert rows["lightgbm"]["max_abs_diff"] == 0.0
    int8 = bundle.unsupervised_outputs(D, "onnx-int8")[SCORE_NAME]
    assert rows["onnx int8"]["max_abs_diff"] == pytest.approx(np.nanmax(np.abs(int8 - reference[SCORE_NAME])))
    for runtime in ("onnx fp32", "onnx int8"):
        assert rows[runtime]["alarms_changed"] <= 0.02 * len(D), rows[runtime]
        assert abs(rows[runtime]["pr_auc"] - rows["lightgbm"]["pr_auc"]) < 0.05, rows[runtime]


def test_a_library_without_the_detector_scores_the_tasks_and_nan(compiled, held_out, tmp_path):
    bundle = compiled[0]
    copy = tmp_path / "bundle"
    shutil.copytree(bundle.path, copy)
    document = json.loads((copy / "bundle.json").read_text())
    document["unsupervised"] = None  # a bundle written before the detector existed
    write_manifest(copy, document)  # with its digest, as iotengine writes it
    plain = build_edge(copy, progress=lambda _: None)
    header = plain.verified_bytes("edge/src/iotengine.h").decode()
    assert "#define IOT_HAS_UNSUPERVISED 0" in header and "IOT_THRESHOLD_UNSUPERVISED ((IOT_REAL)INFINITY)" in header
    rows = held_out.slice(0, 500)
    scores = plain.predict(rows, backend="c")
    assert SCORE_NAME not in scores and not set(RESIDUAL_NAMES) & set(scores)
    reference = bundle.predict(rows)
    assert np.nanmax(np.abs(scores["anomaly_flag"] - reference["anomaly_flag"])) <= 1e-12
    library = edge_library(plain)
    scorer = library.single_scorer()
    scorer.bind(library.new_states(1, 0))
    code, fields = scorer(0, 1_735_689_600, [70.0, 50.0, 40.0, 3.0, 2.0], 1)
    record = dict(zip(SCORES_DTYPE.names, fields, strict=True))
    assert code == 0 and np.isnan(record["unsupervised"]) and np.isnan(record["residual"]).all()
    assert 0.0 <= record["anomaly"] <= 1.0


def test_iotengine_score_writes_the_detector_columns(compiled, held_out, tmp_path):
    bundle = compiled[0]
    data = tmp_path / "telemetry.parquet"
    rows = held_out.slice(0, 2_000)
    pq.write_table(rows, data)
    out = tmp_path / "scores.parquet"
    command = ["score", "--bundle", str(bundle.path), "--data", str(data), "--out", str(out), "--backend", "iot"]
    assert main(command) == 0
    written = pq.read_table(out)
    reference = bundle.predict(rows)
    threshold = bundle.unsupervised["threshold"]
    for name in (SCORE_NAME, *RESIDUAL_NAMES):
        assert np.array_equal(written.column(name).to_numpy(), reference[name], equal_nan=True), name
    decision = written.column(f"{SCORE_NAME}_decision").to_numpy()
    assert np.array_equal(decision, reference[SCORE_NAME] >= threshold)
    assert 0 < decision.sum() < len(decision)


def test_the_stream_alerts_on_the_detector_with_its_residuals_as_drivers(compiled, tmp_path):
    bundle = compiled[0]
    source = fleet_source(12_000, machines=20, seed=24, late_rate=0.0)  # in time order: the batch path's rows
    replay = Replay(bundle, source, backend="c", alerts_path=tmp_path / "alerts.csv", scores_path=tmp_path / "s.csv")
    summary = replay.run()
    alerts = [a for a in replay.alerts if a.task == SCORE_NAME]
    assert alerts and summary.alerts[SCORE_NAME] == len(alerts)
    scores = bundle.predict(
        pa.table(
            {
                "timestamp": pa.array(source.timestamps, pa.timestamp("s", tz="UTC")),
                "machine_id": source.machine_ids,
                **{name: source.sensors[:, s] for s, name in enumerate(SENSORS)},
                "machine_status": source.statuses,
            }
        )
    )
    threshold = bundle.unsupervised["threshold"]
    for alert in alerts:
        assert alert.score == pytest.approx(scores[SCORE_NAME][alert.row], abs=1e-12)
        assert alert.score >= threshold
        sensor, value, residual = alert.drivers[0]  # the sensor with the largest |residual| first
        assert residual == pytest.approx(scores[f"residual_{sensor}"][alert.row], abs=1e-12)
        assert abs(residual) == pytest.approx(alert.score, abs=1e-12)
        assert value == source.sensors[alert.row, SENSORS.index(sensor)]
    quality = {q.task: q for q in summary.quality}
    assert quality[SCORE_NAME].episodes > 0 and quality[SCORE_NAME].precision > 0.3
    header = (tmp_path / "s.csv").read_text().splitlines()[0]
    assert header.endswith(f",{SCORE_NAME}")
