"""Training: CV metrics against scikit-learn's own CV, thresholds from out-of-fold data, ceilings against the
generator's laws, bundles that round-trip and refuse tampering, and the ``iotengine train`` reports."""

from __future__ import annotations

import csv
import json
import shutil

import lightgbm as lgb
import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.model_selection import cross_validate as sklearn_cross_validate

from engine.bundle.files import write_manifest
from engine.bundle.format import Bundle, TaskModel
from engine.cli.commands import main
from engine.data.loading import TelemetryError, save_telemetry
from engine.data.synthetic import FLEET_INTERVAL_S, KAGGLE_FAILURE_TYPE_GIVEN_MAINTENANCE, generate
from engine.errors import BundleError
from engine.models.autoencoder import RESIDUAL_NAMES, SCORE_NAME
from engine.models.ceilings import task_ceilings
from engine.models.cross_validation import choose_threshold, cross_validate, fit_model
from engine.models.reduction import ReductionPoint, pick_compact
from engine.models.tasks import INPUT_COLUMNS, TASK_BY_NAME, TASKS, inputs_and_targets
from engine.models.zoo import candidates

SEED = 0


@pytest.fixture(scope="module")
def kaggle():
    return generate(4_000, seed=11)


@pytest.fixture(scope="module")
def kaggle_inputs(kaggle):
    return inputs_and_targets(kaggle)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, kaggle, real_sample_path):
    """One ``iotengine train`` run on small data, with fleet data and the real sample as holdout."""
    folder = tmp_path_factory.mktemp("train")
    data = folder / "kaggle.parquet"
    fleet = folder / "fleet.parquet"
    save_telemetry(kaggle, data)
    save_telemetry(generate(6_000, mode="fleet", machines=20, seed=12, interval_s=FLEET_INTERVAL_S), fleet)
    out = folder / "out"
    code = main(
        ["train", "--data", str(data), "--out", str(out), "--fleet", str(fleet), "--holdout", str(real_sample_path)]
    )
    assert code == 0
    return out


def _rows(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


# --- inputs


def test_no_input_reads_a_label(kaggle):
    X, _ = inputs_and_targets(kaggle)
    rng = np.random.default_rng(0)
    for label in ("anomaly_flag", "maintenance_required", "downtime_risk", "predicted_remaining_life", "failure_type"):
        index = kaggle.column_names.index(label)
        shuffled = kaggle.set_column(index, label, kaggle.column(label).take(rng.permutation(kaggle.num_rows)))
        X_shuffled, y_shuffled = inputs_and_targets(shuffled)
        assert np.array_equal(X, X_shuffled, equal_nan=True), label
        task = "downtime_risk" if label == "downtime_risk" else label
        assert not np.array_equal(y_shuffled[task], inputs_and_targets(kaggle)[1][task]), label


def test_targets_follow_the_label_columns(kaggle):
    _, y = inputs_and_targets(kaggle)
    frame = kaggle.to_pandas()
    assert np.array_equal(y["anomaly_flag"], frame["anomaly_flag"].to_numpy())
    assert np.array_equal(y["downtime_risk"], (frame["downtime_risk"] >= 0.5).to_numpy().astype(int))
    assert list(np.asarray(TASK_BY_NAME["failure_type"].classes)[y["failure_type"]]) == list(frame["failure_type"])
    assert np.array_equal(y["predicted_remaining_life"], frame["predicted_remaining_life"].to_numpy())


def test_training_without_labels_names_the_missing_column(kaggle):
    with pytest.raises(TelemetryError, match="anomaly_flag"):
        inputs_and_targets(kaggle.drop_columns(["anomaly_flag"]))


def test_training_on_a_single_class_is_refused_by_name(tmp_path, capsys):
    quiet = generate(500, mode="fleet", machines=5, seed=1)  # eight hours: nothing fails
    path = save_telemetry(quiet, tmp_path / "quiet.parquet")
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "out")]) == 1
    assert "anomaly_flag" in capsys.readouterr().err


# --- cross-validation against scikit-learn's own


@pytest.mark.parametrize("family", ["lightgbm", "gaussian_nb", "random_forest"])
def test_cv_metrics_match_sklearn_cross_validate(kaggle_inputs, family):
    X, y = kaggle_inputs
    task = TASK_BY_NAME["maintenance_required"]
    ours = cross_validate(task, X, y[task.name], families=[family], seed=SEED)[family]
    candidate = candidates("binary", seed=SEED)[family]
    theirs = sklearn_cross_validate(
        candidate.estimator,
        X,
        y[task.name],
        cv=StratifiedKFold(3, shuffle=True, random_state=SEED),
        scoring=["accuracy", "precision", "recall", "f1", "roc_auc"],
        params=candidate.fit_params,
    )
    for metric in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert ours.mean(metric) == pytest.approx(np.mean(theirs[f"test_{metric}"]), abs=1e-12), metric
        assert ours.std(metric) == pytest.approx(np.std(theirs[f"test_{metric}"]), abs=1e-12), metric


def test_reported_table_matches_sklearn_metrics_of_the_out_of_fold_predictions(trained, kaggle_inputs):
    X, y = kaggle_inputs
    rows = {(r["task"], r["model"]): r for r in _rows(trained / "model_comparison.csv")}
    assert len(rows) == 6 * len(TASKS)
    task = TASK_BY_NAME["anomaly_flag"]
    candidate = candidates("binary", seed=SEED)["lightgbm"]
    folds = StratifiedKFold(3, shuffle=True, random_state=SEED)
    f1s = []
    for train, test in folds.split(X, y[task.name]):
        model = lgb.LGBMClassifier(**candidate.estimator.get_params()).fit(
            X[train], y[task.name][train], categorical_feature=[67]
        )
        f1s.append(f1_score(y[task.name][test], model.predict_proba(X[test])[:, 1] >= 0.5))
    assert float(rows[("anomaly_flag", "lightgbm")]["f1_mean"]) == pytest.approx(np.mean(f1s), rel=1e-5)


def test_threshold_comes_from_out_of_fold_probabilities(kaggle_inputs):
    X, y = kaggle_inputs
    task = TASK_BY_NAME["anomaly_flag"]
    result = cross_validate(task, X, y[task.name], families=["lightgbm"], seed=SEED)["lightgbm"]
    candidate = candidates("binary", seed=SEED)["lightgbm"]
    oof = cross_val_predict(
        candidate.estimator,
        X,
        y[task.name],
        cv=StratifiedKFold(3, shuffle=True, random_state=SEED),
        method="predict_proba",
        params=candidate.fit_params,
    )[:, 1]
    assert np.array_equal(result.oof, oof)
    threshold = choose_threshold(y[task.name], result.oof)
    # Brute force over every distinct score: the highest threshold with the best F1.
    best_f1 = max(f1_score(y[task.name], oof >= t) for t in np.unique(oof))
    best = max(t for t in np.unique(oof) if f1_score(y[task.name], oof >= t) == best_f1)
    assert threshold == best
    # In-sample probabilities would give another threshold: the chosen one is not fitted to training rows.
    in_sample = fit_model(candidate, X, y[task.name]).predict_proba(X)[:, 1]
    assert not np.array_equal(in_sample, oof)


# --- ceilings


def test_ceilings_agree_with_the_generators_laws():
    X, y = inputs_and_targets(generate(100_000, seed=21))
    ceilings = task_ceilings(X, y)
    assert ceilings["anomaly_flag"]["f1"] == 1.0 and ceilings["downtime_risk"]["f1"] == 1.0
    # P(anomaly) from the sensor laws: temperature ~ N(75, 10) > 90 or vibration ~ N(50, 15) > 80.
    p_anomaly = 1 - norm.cdf(1.5) * norm.cdf(2.0)
    # Remaining life: U{1..49} if anomalous, U{10..499} otherwise; the best predictor is the group mean.
    mean_a, var_a, mean_n, var_n = 25.0, (49**2 - 1) / 12, 254.5, (490**2 - 1) / 12
    between = p_anomaly * (1 - p_anomaly) * (mean_n - mean_a) ** 2
    r2 = between / (p_anomaly * var_a + (1 - p_anomaly) * var_n + between)
    assert ceilings["predicted_remaining_life"]["r2"] == pytest.approx(r2, abs=0.01)
    # Maintenance: certain when anomalous or in maintenance (p 0.1); else only when life < 20 (10 of 490).
    certain = 1 - (1 - p_anomaly) * 0.9
    missed = (1 - p_anomaly) * 0.9 * 10 / 490
    assert ceilings["maintenance_required"]["f1"] == pytest.approx(2 * certain / (2 * certain + missed), abs=0.005)
    # Failure type: Normal outside maintenance; the likeliest type within it.
    accuracy = 0.9 + 0.1 * KAGGLE_FAILURE_TYPE_GIVEN_MAINTENANCE.max()
    assert ceilings["failure_type"]["accuracy"] == pytest.approx(accuracy, abs=0.005)
    assert ceilings["failure_type"]["f1_macro"] < 0.45


def test_a_leaked_label_beats_the_ceiling_and_honest_models_do_not(kaggle_inputs, trained):
    X, y = kaggle_inputs
    ceiling = task_ceilings(X, y)["maintenance_required"]["f1"]
    task = TASK_BY_NAME["maintenance_required"]
    leaked = X.copy()
    leaked[:, 5] = y["predicted_remaining_life"]  # replace temp_sq by the label maintenance is made from
    cheat = cross_validate(task, leaked, y[task.name], families=["lightgbm"], seed=SEED)["lightgbm"]
    assert cheat.mean("f1") > ceiling + 0.02
    for row in _rows(trained / "ceilings.csv"):
        assert float(row["best_model_score"]) <= float(row["ceiling"]) + 0.02, row
    maintenance = next(r for r in _rows(trained / "ceilings.csv") if r["task"] == "maintenance_required")
    assert maintenance["reference_above_ceiling"] == "True"  # the reference project's 0.9821


# --- bundles


@pytest.mark.parametrize(
    ("task_name", "families"),
    [
        (
            "anomaly_flag",
            [
                "lightgbm",
                "random_forest",
                "extra_trees",
                "hist_gradient_boosting",
                "logistic_regression",
                "gaussian_nb",
            ],
        ),
        ("failure_type", ["lightgbm", "random_forest", "hist_gradient_boosting", "logistic_regression", "gaussian_nb"]),
        (
            "predicted_remaining_life",
            ["lightgbm", "random_forest", "extra_trees", "hist_gradient_boosting", "ridge", "mean"],
        ),
    ],
)
def test_bundle_round_trips_every_family(tmp_path, task_name, families):
    # Fleet data: missing values included, and no Pressure Drop rows (the bundle must still give 5 columns).
    table = generate(3_000, mode="fleet", machines=10, seed=32, interval_s=600)
    X, y = inputs_and_targets(table)
    assert np.isnan(X).any()
    task = TASK_BY_NAME[task_name]
    zoo = candidates(task.kind, seed=SEED)
    for family in families:
        model = fit_model(zoo[family], X, y[task_name])
        folder = tmp_path / family
        loaded = Bundle.load(Bundle.write(folder, {task_name: TaskModel(task_name, family, model)}).path)
        predicted = loaded.predict(table)
        if task.kind == "regression":
            expected = model.predict(X)
            assert np.allclose(predicted[task_name], expected, rtol=1e-12, atol=1e-9), family
        elif task.kind == "binary":
            assert np.allclose(predicted[task_name], model.predict_proba(X)[:, 1], rtol=1e-12, atol=1e-12), family
        else:
            proba = np.zeros((len(X), 5))
            proba[:, model.classes_] = model.predict_proba(X)
            assert np.allclose(predicted["failure_type_proba"], proba, rtol=1e-12, atol=1e-12), family
            assert list(predicted[task_name]) == [task.classes[k] for k in proba.argmax(axis=1)]
        # The model in its own format, and (scikit-learn models skl2onnx converts) its ONNX export; no pickle.
        exported = family not in ("lightgbm", "hist_gradient_boosting", "mean")
        expected = {loaded.manifest["tasks"][task_name]["file"]}
        expected |= {f"onnx/chosen/{task_name}.fp32.onnx"} if exported else set()
        assert set(loaded.files) == expected, family
        assert ("unavailable" in loaded.manifest["sklearn_onnx"].get(task_name, {})) == (
            family in ("hist_gradient_boosting", "mean")
        ), family


def test_trained_bundle_predicts_every_task(trained, kaggle):
    bundle = Bundle.load(trained / "bundle")
    unlabelled = kaggle.slice(0, 50).select([*kaggle.column_names[:8]])
    assert "anomaly_flag" not in unlabelled.column_names
    scores = bundle.predict(unlabelled)
    assert set(scores) == {task.name for task in TASKS} | {"failure_type_proba", SCORE_NAME, *RESIDUAL_NAMES}
    assert scores["failure_type_proba"].shape == (50, 5)
    assert np.isfinite(scores[SCORE_NAME]).all() and (scores[SCORE_NAME] >= 0).all()  # no labels needed
    assert np.allclose(scores["failure_type_proba"].sum(axis=1), 1.0)
    for name in ("anomaly_flag", "maintenance_required", "downtime_risk"):
        assert ((scores[name] >= 0) & (scores[name] <= 1)).all()
    assert set(bundle.thresholds) == {"anomaly_flag", "maintenance_required", "downtime_risk"}
    manifest = json.loads((trained / "bundle" / "bundle.json").read_text())
    assert manifest["input_columns"] == list(INPUT_COLUMNS)
    assert set(manifest["libraries"]) >= {"lightgbm", "scikit-learn", "numpy", "treelite"}
    for set_name in ("lightgbm", "compact"):
        assert set(manifest["model_sets"][set_name]) == {task.name for task in TASKS}
    X, _ = inputs_and_targets(kaggle.slice(0, 50))
    for name, entry in bundle.model_set("compact").items():
        assert bundle.load_set_model("compact", name).predict(X[:, entry["columns"]]).shape[0] == 50
    assert bundle.load_set_model("lightgbm", "anomaly_flag").predict(X).shape == (50,)


def test_tampered_or_missing_bundle_files_are_refused(trained, tmp_path):
    folder = tmp_path / "bundle"
    shutil.copytree(trained / "bundle", folder)
    Bundle.load(folder)
    model_file = folder / next(iter(json.loads((folder / "bundle.json").read_text())["tasks"].values()))["file"]
    original = model_file.read_bytes()
    model_file.write_bytes(original[:-2] + bytes([original[-2] ^ 1]) + original[-1:])
    with pytest.raises(BundleError, match="sha256"):
        Bundle.load(folder)
    model_file.unlink()
    with pytest.raises(BundleError, match="missing"):
        Bundle.load(folder)
    model_file.write_bytes(original)
    manifest = json.loads((folder / "bundle.json").read_text())
    manifest["files"]["../outside.txt"] = "0" * 64
    (folder / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="manifest_sha256 does not match its contents"):
        Bundle.load(folder)
    write_manifest(folder, manifest)  # a crafted manifest with a recomputed digest: still refused
    with pytest.raises(BundleError, match="outside"):
        Bundle.load(folder)
    (folder / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="JSON"):
        Bundle.load(folder)
    with pytest.raises(BundleError, match="not a bundle"):
        Bundle.load(tmp_path / "nowhere")


# --- reduction, autoencoder, reports


def test_pick_compact_takes_the_fewest_features_within_tolerance():
    points = [
        ReductionPoint("all 67", 67, 0.950, 0.0, ()),
        ReductionPoint("top 20", 20, 0.948, 0.0, ()),
        ReductionPoint("top 5", 5, 0.946, 0.0, ()),
        ReductionPoint("top 2", 2, 0.90, 0.0, ()),
    ]
    assert pick_compact(points).label == "top 5"
    assert pick_compact(points, tolerance=0.0025).label == "top 20"
    assert pick_compact(points, tolerance=0.001).label == "all 67"


def test_train_writes_every_report_and_the_unsupervised_detector_beats_its_peers(trained):
    for name in (
        "TRAINING.md",
        "model_comparison.csv",
        "ceilings.csv",
        "feature_reduction.csv",
        "unsupervised.csv",
        "unsupervised.md",
        "unsupervised_holdout.png",
        "fleet_features.csv",
        "holdout.csv",
        "model_comparison.png",
        "confusion_matrices.png",
        "feature_importance.png",
        "score_vs_features.png",
    ):
        assert (trained / name).stat().st_size > 0, name
    markdown = (trained / "TRAINING.md").read_text()
    for name in ("model_comparison.csv", "score_vs_features.png", "Bayes ceiling", "reference project"):
        assert name in markdown
    unsupervised = {r["detector"]: r for r in _rows(trained / "unsupervised.csv") if r["data"] == "holdout"}
    assert set(unsupervised) == {"lightgbm_autoencoder", "isolation_forest", "rolling_zscore", "two-sided ceiling"}
    # On the real sample (the holdout): the goal of at least IsolationForest's PR-AUC, and well above chance.
    ours = float(unsupervised["lightgbm_autoencoder"]["pr_auc"])
    assert ours >= float(unsupervised["isolation_forest"]["pr_auc"])
    rate = int(unsupervised["lightgbm_autoencoder"]["positives"]) / int(unsupervised["lightgbm_autoencoder"]["rows"])
    assert ours > 2 * rate
    assert "Unsupervised detector" in markdown
    reduction = _rows(trained / "feature_reduction.csv")
    assert {r["features"] for r in reduction} == {
        "all 67",
        "top 20",
        "top 10",
        "top 5",
        "top 2",
        "temperature + vibration",
    }
    assert sum(r["compact"] == "True" for r in reduction) == len(TASKS)
    holdout = _rows(trained / "holdout.csv")
    bundle_rows = [r for r in holdout if r["evaluation"].startswith("bundle")]
    assert len(bundle_rows) == len(TASKS)
    anomaly = next(r for r in bundle_rows if r["task"] == "anomaly_flag")
    assert float(anomaly["f1"]) > 0.9  # trained on generated data, scored on the real sample
