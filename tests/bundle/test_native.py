"""Native libraries (treelite + tl2cgen + gcc, called through cffi) against LightGBM's and scikit-learn's own
predictions, on 100k fleet rows with missing values and on the real Kaggle sample."""

from __future__ import annotations

import shutil

import lightgbm as lgb
import numpy as np
import pytest

from compile.binding import NativeModel
from compile.errors import CompileError
from compile.native import build_library, treelite_model
from compile.tl2cgen_source import generate_sources
from engine.bundle.format import Bundle
from engine.bundle.native import compile_bundle, native_models
from engine.errors import BundleError
from engine.models.tasks import TASK_BY_NAME, TASKS


@pytest.mark.parametrize("data", ["fleet", "real"])
def test_native_lightgbm_equals_lightgbm_raw_and_transformed(compiled, fleet_inputs, real_inputs, data):
    bundle, lightgbm_models, _ = compiled
    X = fleet_inputs[0] if data == "fleet" else real_inputs[0]
    native = native_models(bundle, "lightgbm")
    assert set(native) == {task.name for task in TASKS}
    for name, model in lightgbm_models.items():
        booster = model.booster_
        expected = booster.predict(X)
        expected_raw = booster.predict(X, raw_score=True)
        got = native[name].predict(X)
        got_raw = native[name].predict(X, raw=True)
        assert np.max(np.abs(got - expected)) <= 1e-12, name
        assert np.max(np.abs(got_raw.reshape(expected_raw.shape) - expected_raw)) <= 1e-12, name


def test_native_sklearn_trees_equal_predict_proba(compiled, fleet_inputs, real_inputs, chosen_families):
    bundle, _, estimators = compiled
    native = native_models(bundle, "chosen")
    for X in (fleet_inputs[0], real_inputs[0]):
        for name, family in chosen_families.items():
            if family == "lightgbm":
                continue
            task = TASK_BY_NAME[name]
            expected = estimators[name].predict_proba(X)
            expected = expected[:, 1] if task.kind == "binary" else expected
            got = native[name].predict(X)
            assert np.max(np.abs(got - expected)) <= 1e-12, (name, family)


def test_bundle_native_backend_equals_the_models_own_libraries(compiled, fleet_inputs):
    bundle, _, _ = compiled
    X = fleet_inputs[0][:20_000]
    own = bundle.predict_inputs(X, backend="lightgbm")
    native = bundle.predict_inputs(X, backend="native")
    for key, values in own.items():
        if values.dtype.kind == "f":
            assert np.max(np.abs(native[key] - values)) <= 1e-12, key
        else:
            assert np.array_equal(native[key], values), key
    own = bundle.predict_inputs(X, backend="lightgbm", models="lightgbm")
    native = bundle.predict_inputs(X, backend="native", models="lightgbm")
    for key, values in own.items():
        if values.dtype.kind == "f":
            assert np.max(np.abs(native[key] - values)) <= 1e-12, key
    with pytest.raises(ValueError, match="backend"):
        bundle.predict_inputs(X, backend="tensorflow")
    with pytest.raises(ValueError, match="models"):
        bundle.predict_inputs(X, models="best")


def test_single_row_path_equals_batch(compiled, fleet_inputs):
    bundle, _, _ = compiled
    X = fleet_inputs[0][:300]
    for name, model in native_models(bundle, "lightgbm").items():
        batch = model.predict(X)
        rows = np.array([model.predict_row(x) for x in X])
        assert np.array_equal(rows.reshape(batch.shape), batch), name
    # A strided, non-contiguous view is accepted (copied once) and gives the same numbers.
    model = native_models(bundle, "lightgbm")["anomaly_flag"]
    wide = np.repeat(X, 2, axis=1)[:, ::2]
    assert np.array_equal(model.predict(wide), model.predict(X))


@pytest.mark.parametrize("quantize", [False, True])
def test_values_whose_low_bits_are_all_ones_are_not_missing(tmp_path, quantize):
    # tl2cgen's own missing test reads the low 32 bits of the double: 0.49999999999999994 = sin(pi/6), hour_sin
    # at 1 am, has them all set. A one-split model on such values must follow the value, not the missing branch.
    rng = np.random.default_rng(0)
    x = rng.choice([0.49999999999999994, 0.9, np.nan], size=2_000)
    X = np.column_stack([x, rng.normal(size=2_000)])
    y = (x > 0.7).astype(float) * 10.0
    booster = lgb.train({"objective": "regression", "verbose": -1, "min_data_in_leaf": 5}, lgb.Dataset(X, y), 3)
    model = treelite_model(booster.model_to_string().encode(), "lightgbm")
    sources = generate_sources(model, tmp_path / "src", round_float32=False, quantize=quantize)
    library = build_library(sources, tmp_path / "m.so")
    import hashlib

    native = NativeModel(library, hashlib.sha256(library.read_bytes()).hexdigest(), "regression")
    assert np.array_equal(native.predict(X), booster.predict(X))


def test_corrupted_or_foreign_libraries_are_refused_before_loading(compiled, tmp_path):
    bundle, _, _ = compiled
    folder = tmp_path / "bundle"
    shutil.copytree(bundle.path, folder)
    entries = Bundle.load(folder).manifest["native"]["lightgbm"]
    anomaly = folder / entries["anomaly_flag"]["library"]
    foreign = folder / entries["failure_type"]["library"]
    original = anomaly.read_bytes()
    shutil.copyfile(foreign, anomaly)  # a real, loadable library, but not this one
    with pytest.raises(BundleError, match="sha256"):
        Bundle.load(folder)
    with pytest.raises(CompileError, match="sha256"):
        NativeModel(anomaly, bundle.files[entries["anomaly_flag"]["library"]], "binary")
    anomaly.write_bytes(original[:1000] + bytes(b ^ 0xFF for b in original[1000:1016]) + original[1016:])
    with pytest.raises(CompileError, match="refusing"):
        NativeModel(anomaly, bundle.files[entries["anomaly_flag"]["library"]], "binary")
    anomaly.write_bytes(original)
    Bundle.load(folder)


def test_bundle_records_sources_and_libraries_with_hashes(compiled):
    bundle, _, _ = compiled
    native = bundle.manifest["native"]
    assert set(native["chosen"]) == {task.name for task in TASKS}
    for tasks in native.values():
        for entry in tasks.values():
            assert entry["library"] in bundle.files
            assert any(s.endswith("main.c") for s in entry["sources"])
            assert all(s in bundle.files for s in entry["sources"])
    assert native["chosen"]["anomaly_flag"]["round_float32"] is True
    assert native["chosen"]["downtime_risk"]["round_float32"] is False


def test_compile_refuses_a_model_that_is_not_a_tree():
    with pytest.raises(CompileError, match="not a tree"):
        treelite_model(b"{}", "gaussian_nb")


def test_compile_recompiles_cleanly(compiled, tmp_path):
    bundle, _, _ = compiled
    folder = tmp_path / "again"
    shutil.copytree(bundle.path, folder)
    again = compile_bundle(folder, progress=lambda _: None)
    assert set(again.manifest["native"]["lightgbm"]) == {task.name for task in TASKS}


def _compat_models():
    """One small model of every tree family a bundle can hold, with NaN and the categorical status column."""
    from sklearn.ensemble import (
        ExtraTreesRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
    )

    rng = np.random.default_rng(3)
    X = rng.normal(size=(3_000, 6))
    X[:, 5] = rng.integers(0, 3, size=3_000)
    X[:, :5][rng.random((3_000, 5)) < 0.05] = np.nan
    clean = np.nan_to_num(X)
    binary = (clean[:, 0] + clean[:, 1] + (X[:, 5] == 2) > 0.5).astype(int)
    classes = (clean[:, 0] > 0).astype(int) + (clean[:, 2] > 0.5) + (X[:, 5] == 1)
    value = 3 * clean[:, 0] - clean[:, 3] + X[:, 5]
    lightgbm_params = {"n_estimators": 30, "num_leaves": 15, "verbose": -1}
    return X, [
        ("lightgbm", "binary", lgb.LGBMClassifier(**lightgbm_params).fit(X, binary, categorical_feature=[5])),
        ("lightgbm", "multiclass", lgb.LGBMClassifier(**lightgbm_params).fit(X, classes, categorical_feature=[5])),
        ("random_forest", "binary", RandomForestClassifier(20, max_depth=8, random_state=0).fit(clean, binary)),
        ("extra_trees", "regression", ExtraTreesRegressor(20, max_depth=8, random_state=0).fit(clean, value)),
        (
            "hist_gradient_boosting",
            "multiclass",
            HistGradientBoostingClassifier(max_iter=20, categorical_features=[5]).fit(X, classes),
        ),
        (
            "hist_gradient_boosting",
            "regression",
            HistGradientBoostingRegressor(max_iter=20, categorical_features=[5]).fit(X, value),
        ),
    ]


def test_checkpoints_of_installed_treelite_compile_to_the_same_predictions(tmp_path):
    # tl2cgen 1.0.0 embeds treelite 4.1.2 and reads the checkpoints the installed treelite writes (a newer 4.x);
    # its version notice is silenced (compile/quiet.py) only because this holds for every family: bit for bit.
    import hashlib

    import treelite

    from compile.quiet import third_party_output
    from engine.models.model_files import save_model

    X, models = _compat_models()
    for family, kind, estimator in models:
        data = save_model(estimator, family, kind).data
        model = treelite_model(data, family)
        folder = tmp_path / f"{family}_{kind}"
        with third_party_output() as outer:
            sources = generate_sources(model, folder / "src", round_float32=family in ("random_forest", "extra_trees"))
        assert outer.kept == [] and outer.dropped == 0  # the notices stopped at generate_sources, nothing else
        library = build_library(sources, folder / "m.so")
        native = NativeModel(
            library,
            hashlib.sha256(library.read_bytes()).hexdigest(),
            kind,
            link_in_numpy=family == "hist_gradient_boosting",
        )
        inputs = X if family in ("lightgbm", "hist_gradient_boosting") else np.nan_to_num(X)
        if kind == "regression":
            expected = estimator.predict(inputs)
        else:
            expected = estimator.predict_proba(inputs)
            expected = expected[:, 1] if kind == "binary" else expected
        # The margins equal the installed treelite's own interpreter on the same checkpoint, bit for bit ...
        # (forests compare float32, so their interpreter gets float32 inputs; binary forests give both classes).
        forest = family in ("random_forest", "extra_trees")
        margins = treelite.gtil.predict(model, inputs.astype(np.float32) if forest else inputs, pred_margin=True)
        margins = margins.reshape(len(inputs), -1)
        margins = margins[:, 1] if kind == "binary" and margins.shape[1] == 2 else margins
        got_margins = native.predict(inputs, raw=True)
        assert np.array_equal(got_margins.reshape(margins.shape), margins), (family, kind)
        # ... and the scores are the framework's (HistGradientBoosting sums and normalises in another order).
        got = native.predict(inputs).reshape(expected.shape)
        assert np.max(np.abs(got - expected)) <= 1e-12, (family, kind, float(np.abs(got - expected).max()))
    assert treelite.__version__.startswith("4.")
