"""``iotengine score`` and the ONNX export of every chosen model, on the real Kaggle sample.

The bundle's chosen models are one of each scikit-learn family skl2onnx converts (random forest, extra trees,
logistic regression, naive Bayes, ridge), beside the LightGBM set; it is compiled as `iotengine compile` does."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from engine.bundle.format import Bundle, TaskModel
from engine.cli.commands import main
from engine.data.loading import load_telemetry
from engine.data.schema import FAILURE_TYPES
from engine.data.synthetic import generate
from engine.models.cross_validation import fit_model
from engine.models.tasks import TASKS, inputs_and_targets
from engine.models.zoo import candidates
from engine.scoring.batch import scores_table

CHOSEN = {
    "anomaly_flag": "random_forest",
    "maintenance_required": "extra_trees",
    "downtime_risk": "logistic_regression",
    "failure_type": "gaussian_nb",
    "predicted_remaining_life": "ridge",
}
# ONNX compares float32 with float32 thresholds and computes linear models in float32.
ONNX_PROBABILITY_TOLERANCE = 1e-4
ONNX_HOURS_TOLERANCE = 1e-2


@pytest.fixture(scope="module")
def sklearn_bundle(tmp_path_factory):
    X, y = inputs_and_targets(generate(6_000, mode="kaggle", seed=21))
    chosen, lightgbm = {}, {}
    for task in TASKS:
        zoo = candidates(task.kind)
        chosen[task.name] = TaskModel(
            task.name, CHOSEN[task.name], fit_model(zoo[CHOSEN[task.name]], X, y[task.name]), threshold=0.4
        )
        lightgbm[task.name] = TaskModel(task.name, "lightgbm", fit_model(zoo["lightgbm"], X, y[task.name]))
    folder = tmp_path_factory.mktemp("score") / "bundle"
    Bundle.write(folder, chosen, sets={"lightgbm": lightgbm})
    assert main(["compile", "--bundle", str(folder)]) == 0
    return Bundle.load(folder), {name: model.estimator for name, model in chosen.items()}


@pytest.mark.parametrize("backend", ["lightgbm", "native", "iot", "onnx", "c"])
def test_score_command_writes_bundle_predict_row_by_row(sklearn_bundle, real_sample_path, tmp_path, backend, capsys):
    bundle, _ = sklearn_bundle
    out = tmp_path / "scores.parquet"
    argv = ["score", "--bundle", str(bundle.path), "--data", str(real_sample_path), "--out", str(out)]
    assert main([*argv, "--backend", backend]) == 0
    assert f"wrote scores of 2,231 rows (chosen models, backend {backend})" in capsys.readouterr().out
    written = pq.read_table(out)
    telemetry = load_telemetry(real_sample_path)
    expected = bundle.predict(real_sample_path, backend=backend)
    assert written.num_rows == telemetry.num_rows == 2_231
    assert written.column("machine_id").equals(telemetry.column("machine_id"))  # input order, one row per row
    stamps = written.column("timestamp").cast(telemetry.schema.field("timestamp").type)  # Parquet stores ms
    assert stamps.equals(telemetry.column("timestamp"))
    for task in ("anomaly_flag", "maintenance_required", "downtime_risk", "predicted_remaining_life"):
        assert np.array_equal(written.column(task).to_numpy(), expected[task]), task
    for task in ("anomaly_flag", "maintenance_required", "downtime_risk"):
        decided = written.column(f"{task}_decision").to_numpy(zero_copy_only=False)
        assert np.array_equal(decided, expected[task] >= 0.4), task
    assert written.column("failure_type").to_pylist() == expected["failure_type"].tolist()
    proba = np.column_stack([written.column(n).to_numpy() for n in written.column_names if "_p_" in n])
    assert [n for n in written.column_names if "_p_" in n] == [
        "failure_type_p_normal",
        "failure_type_p_vibration_issue",
        "failure_type_p_overheating",
        "failure_type_p_pressure_drop",
        "failure_type_p_electrical_fault",
    ]
    assert np.array_equal(proba, expected["failure_type_proba"])
    assert list(tmp_path.iterdir()) == [out]  # the temporary file is gone


def test_every_backend_agrees_with_the_models_own_libraries(sklearn_bundle, real_sample_path):
    bundle, estimators = sklearn_bundle
    X, _ = inputs_and_targets(real_sample_path)
    own = bundle.predict(real_sample_path)
    # The independent oracle: scikit-learn's own predictions on the same inputs.
    for task, estimator in estimators.items():
        if task == "failure_type":
            assert np.max(np.abs(own["failure_type_proba"] - estimator.predict_proba(X))) <= 1e-12
        elif task == "predicted_remaining_life":
            assert np.max(np.abs(own[task] - estimator.predict(X))) <= 1e-9
        else:
            assert np.max(np.abs(own[task] - estimator.predict_proba(X)[:, 1])) <= 1e-12, task
    for backend, tolerance in (("native", 1e-12), ("c", 1e-12)):
        got = bundle.predict(real_sample_path, backend=backend)
        for key, values in own.items():
            if values.dtype.kind == "f":
                assert np.max(np.abs(got[key] - values)) <= tolerance * max(1.0, np.abs(values).max()), (backend, key)
            else:
                assert np.array_equal(got[key], values), (backend, key)


def _float32_flip_rows(forest, X: np.ndarray) -> np.ndarray:
    """Rows where some split compares float32(x) differently with the float32-rounded threshold (ONNX) than with
    scikit-learn's float64 threshold: the only rows where a forest's ONNX export may take another branch."""
    x32 = X.astype(np.float32)
    flips = np.zeros(X.shape[0], dtype=bool)
    for tree in forest.estimators_:
        split = tree.tree_.feature >= 0
        for feature, threshold in zip(tree.tree_.feature[split], tree.tree_.threshold[split], strict=True):
            column = x32[:, feature].astype(np.float64)
            flips |= (column <= threshold) != (column <= np.float32(threshold))
    return flips


def test_onnx_backend_on_the_chosen_scikit_learn_models(sklearn_bundle, real_sample_path):
    bundle, estimators = sklearn_bundle
    X, _ = inputs_and_targets(real_sample_path)
    own = bundle.predict(real_sample_path)
    onnx = bundle.predict(real_sample_path, backend="onnx")
    section = bundle.manifest["onnx"]["chosen"]
    assert {task: entry["exporter"] for task, entry in section.items()} == dict.fromkeys(CHOSEN, "skl2onnx")
    for task in ("anomaly_flag", "maintenance_required"):
        flips = _float32_flip_rows(estimators[task], X)
        assert flips.mean() < 0.05, task
        assert np.max(np.abs(onnx[task] - own[task])[~flips]) <= ONNX_PROBABILITY_TOLERANCE, task
    assert np.max(np.abs(onnx["downtime_risk"] - own["downtime_risk"])) <= ONNX_PROBABILITY_TOLERANCE
    assert np.max(np.abs(onnx["failure_type_proba"] - own["failure_type_proba"])) <= ONNX_PROBABILITY_TOLERANCE
    hours = np.abs(onnx["predicted_remaining_life"] - own["predicted_remaining_life"])
    assert 0 < np.max(hours) <= ONNX_HOURS_TOLERANCE  # float32, so not bit for bit


def test_onnx_drift_of_the_chosen_set_counts_changed_decisions(sklearn_bundle):
    from engine.bundle.onnx import onnx_drift

    bundle, _ = sklearn_bundle
    X, y = inputs_and_targets(generate(3_000, mode="kaggle", seed=99))
    rows = {row["task"]: row for row in onnx_drift(bundle, X, y, "chosen")}
    assert set(rows) == set(CHOSEN)
    own = bundle.predict_inputs(X)
    onnx = bundle.predict_inputs(X, backend="onnx")
    for task in ("anomaly_flag", "maintenance_required", "downtime_risk"):
        changed = int(np.sum((own[task] >= 0.4) != (onnx[task] >= 0.4)))
        assert rows[task]["fp32_decisions_changed"] == changed, task
        assert rows[task]["fp32_max_abs_diff"] == pytest.approx(np.abs(own[task] - onnx[task]).max(), abs=0), task
        assert rows[task]["int8"] is None  # no int8 form of scikit-learn models
    assert rows["failure_type"]["fp32_decisions_changed"] == int(
        np.sum(own["failure_type_proba"].argmax(axis=1) != onnx["failure_type_proba"].argmax(axis=1))
    )
    assert rows["predicted_remaining_life"]["fp32_decisions_changed"] is None


def test_score_refuses_bad_bundles_and_files_and_writes_nothing(sklearn_bundle, real_sample_path, tmp_path, capsys):
    bundle, _ = sklearn_bundle
    out = tmp_path / "scores.parquet"
    bad_csv = tmp_path / "bad.csv"
    lines = real_sample_path.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("machine_status")] = "7"
    bad_csv.write_text("\n".join([lines[0], lines[2], ",".join(row)]) + "\n")
    cases = [
        (["--bundle", str(tmp_path), "--data", str(real_sample_path)], "not a bundle"),
        (["--bundle", str(bundle.path), "--data", str(bad_csv)], "column 'machine_status', row 1"),
        (["--bundle", str(bundle.path), "--data", str(tmp_path / "none.csv")], "none.csv"),
        (
            ["--bundle", str(bundle.path), "--data", str(real_sample_path), "--backend", "onnx-int8"],
            "has no chosen model for anomaly_flag (random_forest)",
        ),
        (
            ["--bundle", str(bundle.path), "--data", str(real_sample_path), "--backend", "c", "--models", "lightgbm"],
            "its C library holds the 'chosen' models",
        ),
    ]
    for arguments, message in cases:
        assert main(["score", *arguments, "--out", str(out)]) == 1
        error = capsys.readouterr().err.strip()
        assert error.startswith("iotengine: error:") and message in error and "\n" not in error, error
        assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["bad.csv"]


def test_scores_table_columns_follow_the_failure_types():
    from types import SimpleNamespace

    table = load_telemetry(generate(3, seed=1))
    scores = {
        "anomaly_flag": np.array([0.2, 0.5, 0.9]),
        "failure_type": np.array(FAILURE_TYPES[:3]),
        "failure_type_proba": np.eye(5)[:3],
    }
    out = scores_table(SimpleNamespace(thresholds={"anomaly_flag": 0.5}), table, scores)
    assert out.column("anomaly_flag_decision").to_pylist() == [False, True, True]
    assert out.column("failure_type_p_overheating").to_pylist() == [0.0, 0.0, 1.0]
    assert out.column("failure_type").to_pylist() == list(FAILURE_TYPES[:3])
