"""Every scoring backend against one reference on the same rows, with the tolerance each one is held to.

The reference is :meth:`engine.bundle.format.Bundle.predict` with ``backend="lightgbm"``: each model's own
library. It is itself checked against the fitted estimators (LightGBM's and scikit-learn's ``predict_proba`` and
``predict``), so every backend is tied to the libraries that trained the models, not to iotengine's code.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from engine.bundle.iot import build_iot
from engine.data.synthetic import FLEET_INTERVAL_S, generate
from engine.models.autoencoder import RESIDUAL_NAMES, SCORE_NAME
from engine.models.tasks import TASK_BY_NAME
from engine.stream.scorer import StreamScorer
from tests.oracles.float32_splits import FP32_TOLERANCE, nearest_float32, rows_that_may_flip
from tests.oracles.scores import assert_scores_close
from tests.samples import telemetry_arrays

# backend -> (model set, absolute tolerance, why that tolerance)
BACKENDS = {
    "lightgbm": ("chosen", 1e-12, "the reference; checked against the fitted estimators below"),
    "native": ("chosen", 1e-12, "tl2cgen adds the same leaves in the same order; only the last rounding may differ"),
    "iot": ("chosen", 1e-12, "equals the fitted estimators (below); the reference sums HistGradientBoosting otherwise"),
    "python": ("chosen", 0.0, "the Numba stream kernel gives the batch kernel's bits, and the same model libraries"),
    "c": ("chosen", 1e-12, "the C features are within 4 ulp of Numba's (tests/compile/test_edge_library.py)"),
    "onnx": ("lightgbm", FP32_TOLERANCE, "float32 inputs and sums; rows where float32 rounding flips a split excluded"),
}


@pytest.fixture(scope="module")
def held_out():
    # Fleet rows of other machines and times than the bundle's training rows, in time order (so a stream sees
    # no late sample and its features equal the batch ones); missing sensor values included.
    return generate(3_000, mode="fleet", machines=30, seed=21, interval_s=FLEET_INTERVAL_S)


def _scores(bundle, table, backend: str, models: str) -> dict:
    if backend == "python":
        return StreamScorer(bundle, backend="python").score_batch(*telemetry_arrays(table))
    return bundle.predict(table, backend=backend, models=models)


def _estimator_scores(estimators: dict, X: np.ndarray) -> dict:
    out = {}
    for task, estimator in estimators.items():
        kind = TASK_BY_NAME[task].kind
        if kind == "binary":
            out[task] = estimator.predict_proba(X)[:, 1]
        elif kind == "multiclass":
            out["failure_type_proba"] = np.zeros((X.shape[0], 5))
            out["failure_type_proba"][:, estimator.classes_.astype(int)] = estimator.predict_proba(X)
        else:
            out[task] = estimator.predict(X)
    return out


@pytest.mark.parametrize("models", ["chosen", "lightgbm"])
def test_the_iot_libraries_equal_the_fitted_estimators_bit_for_bit(compiled, held_out, models):
    # Every family the bundle holds (random forest, extra trees, HistGradientBoosting, LightGBM) through
    # iotengine's own generated trees: the scores of scikit-learn and LightGBM themselves, max |difference| 0.
    bundle, lightgbm_models, estimators = compiled
    if models == "lightgbm":
        estimators = lightgbm_models
    X = bundle.inputs(held_out)
    got = bundle.predict(held_out, backend="iot", models=models)
    for estimator in estimators.values():
        # A forest on several jobs adds its trees' probabilities in the order the threads finish; on one job, in
        # tree order: the order the compiled trees keep.
        estimator.set_params(**{name: 1 for name in estimator.get_params() if name.endswith("n_jobs")})
    for name, expected in _estimator_scores(estimators, X).items():
        assert np.max(np.abs(got[name] - expected)) == 0.0, (models, name)


def test_an_avx2_build_scores_as_the_estimators_bit_for_bit(compiled, chosen_families, held_out, tmp_path):
    # iotengine compile --isa avx2: boosted models get the AVX2 path, forests (deep, float32 inputs) stay portable.
    bundle, _, estimators = compiled
    shutil.copytree(bundle.path, tmp_path / "bundle")
    built = build_iot(tmp_path / "bundle", isa="avx2", progress=lambda _: None)
    isas = {task: entry["isa"] for task, entry in built.manifest["iot"]["chosen"].items()}
    forests = {task for task, family in chosen_families.items() if family in ("random_forest", "extra_trees")}
    assert isas == {task: "portable" if task in forests else "avx2" for task in chosen_families}
    got = built.predict(held_out, backend="iot")
    for estimator in estimators.values():
        estimator.set_params(**{name: 1 for name in estimator.get_params() if name.endswith("n_jobs")})
    for name, expected in _estimator_scores(estimators, built.inputs(held_out)).items():
        assert np.max(np.abs(got[name] - expected)) == 0.0, name


def test_the_reference_equals_the_fitted_estimators(compiled, held_out):
    bundle, _, estimators = compiled
    X = bundle.inputs(held_out)
    reference = bundle.predict(held_out, backend="lightgbm")
    for task, estimator in estimators.items():
        kind = TASK_BY_NAME[task].kind
        if kind == "binary":
            expected = estimator.predict_proba(X)[:, 1]
        elif kind == "multiclass":
            expected = np.zeros((X.shape[0], 5))
            expected[:, estimator.classes_.astype(int)] = estimator.predict_proba(X)
            task = "failure_type_proba"
        else:
            expected = estimator.predict(X)
        assert np.max(np.abs(reference[task] - expected)) <= BACKENDS["lightgbm"][1], task


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_backend_scores_as_the_reference(compiled, held_out, backend):
    bundle, _, _ = compiled
    models, tolerance, _ = BACKENDS[backend]
    reference = bundle.predict(held_out, backend="lightgbm", models=models)
    got = _scores(bundle, held_out, backend, models)
    assert set(got) == set(reference)
    assert {SCORE_NAME, *RESIDUAL_NAMES} <= set(got)  # the bundle's unsupervised detector, in the same backend
    rows = np.ones(held_out.num_rows, dtype=bool)
    if backend == "onnx":
        # the detector's float32 drift has its own test (tests/bundle/test_unsupervised_backends.py)
        reference = {name: column for name, column in reference.items() if name not in (SCORE_NAME, *RESIDUAL_NAMES)}
        X = bundle.inputs(held_out)
        for task in bundle.set_entries(models):
            booster = bundle.load_set_model(models, task).booster
            rows &= ~rows_that_may_flip(booster, X, nearest_float32)
        assert rows.mean() > 0.5  # most rows are held to the tolerance
        tolerance *= max(1.0, float(np.abs(reference["predicted_remaining_life"]).max()))  # hours: relative
    assert_scores_close(got, {name: column[rows] for name, column in reference.items()}, tolerance, rows=rows)
