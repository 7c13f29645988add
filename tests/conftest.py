"""Shared fixtures. The real Kaggle sample is read from ../shared/data, never copied into the project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from engine.bundle.format import Bundle, TaskModel
from engine.cli.commands import main
from engine.data.synthetic import FLEET_INTERVAL_S, generate
from engine.features.batch_driver import run_history
from engine.models.autoencoder import LightGBMAutoencoder, detector_matrix
from engine.models.cross_validation import fit_model
from engine.models.tasks import TASKS, inputs_and_targets
from engine.models.zoo import candidates

ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLE = ROOT.parent / "shared" / "data" / "smart_manufacturing_sample.csv"

settings.register_profile("default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")


@pytest.fixture(scope="session")
def real_sample_path() -> Path:
    # Missing reference data is a broken checkout, not a reason to skip.
    assert REAL_SAMPLE.is_file(), f"the real sample is missing: {REAL_SAMPLE} (clone next to ../shared)"
    return REAL_SAMPLE


@pytest.fixture(scope="session")
def real_frame(real_sample_path):
    import pandas as pd

    return pd.read_csv(real_sample_path)


# A bundle of LightGBM models for every task (the ``lightgbm`` set) plus scikit-learn trees as chosen models,
# trained on the first 30k of 100k fleet rows and compiled (native libraries, ONNX): shared by test_native and
# test_onnx, built once per session.
CHOSEN = {
    "anomaly_flag": "random_forest",
    "maintenance_required": "extra_trees",
    "downtime_risk": "lightgbm",
    "failure_type": "hist_gradient_boosting",
    "predicted_remaining_life": "lightgbm",
}


@pytest.fixture(scope="session")
def chosen_families() -> dict[str, str]:
    return dict(CHOSEN)


@pytest.fixture(scope="session")
def fleet_table():
    return generate(100_000, mode="fleet", seed=7, interval_s=FLEET_INTERVAL_S)


@pytest.fixture(scope="session")
def fleet_inputs(fleet_table):
    X, y = inputs_and_targets(fleet_table)
    assert np.isnan(X).any(axis=1).sum() > 500  # missing sensor values reach the models
    return X, y


@pytest.fixture(scope="session")
def fleet_detector_inputs(fleet_table, fleet_inputs):
    """The unsupervised detector's (n, 78) inputs of the same rows."""
    return detector_matrix(fleet_inputs[0], run_history(fleet_table))


@pytest.fixture(scope="session")
def real_inputs(real_sample_path):
    return inputs_and_targets(real_sample_path)


@pytest.fixture(scope="session")
def compiled(tmp_path_factory, fleet_inputs, fleet_detector_inputs):
    """A bundle of LightGBM models for every task plus scikit-learn trees as the chosen models, and the
    unsupervised detector (fitted on the normal rows of the same 30k, calibrated on the next 10k), compiled."""
    X, y = fleet_inputs
    train = slice(0, 30_000)
    lightgbm_models, chosen = {}, {}
    for task in TASKS:
        zoo = candidates(task.kind)
        lightgbm_models[task.name] = fit_model(zoo["lightgbm"], X[train], y[task.name][train])
        family = CHOSEN[task.name]
        model = (
            lightgbm_models[task.name]
            if family == "lightgbm"
            else fit_model(zoo[family], X[train], y[task.name][train])
        )
        chosen[task.name] = TaskModel(task.name, family, model)
    D, normal = fleet_detector_inputs, y["anomaly_flag"] == 0
    detector = LightGBMAutoencoder().fit(D[train], normal=normal[train])
    detector.calibrate(D[30_000:40_000], normal=normal[30_000:40_000])
    folder = tmp_path_factory.mktemp("native") / "bundle"
    Bundle.write(
        folder,
        chosen,
        sets={"lightgbm": {n: TaskModel(n, "lightgbm", m) for n, m in lightgbm_models.items()}},
        unsupervised=detector,
    )
    assert main(["compile", "--bundle", str(folder)]) == 0
    return Bundle.load(folder), lightgbm_models, {n: m.estimator for n, m in chosen.items()}


@pytest.fixture(scope="session")
def main_job(real_sample_path, tmp_path_factory):
    """``iotengine run`` once per session, as a user runs it (a subprocess), on the real sample in place of
    kaggle-mode data: the CLI test checks its console and artifacts, the benchmark tests its quick benchmarks."""
    out = tmp_path_factory.mktemp("main_job") / "artifacts"
    command = [sys.executable, "-m", "engine.cli", "run", "--out", str(out), "--rows", "3000"]
    done = subprocess.run([*command, "--data", str(real_sample_path)], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, out
