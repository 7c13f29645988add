"""iotengine's own tree code generator (compile/tree_codegen.py) against the frameworks that trained the models:
LightGBM's predict, scikit-learn's forests' and HistGradientBoosting's predict_proba / predict, compared for
equality (max |diff| 0); the threaded and single-row entries against the one-thread batch."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import lightgbm as lgb
import numpy as np
import pytest
import treelite
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

from compile.binding import NativeModel
from compile.errors import CompileError
from compile.sklearn_trees import import_sklearn_trees
from compile.tree_codegen import build_forest_library, forest_source
from tests.oracles.scores import assert_equals_lightgbm
from tests.small_models import on_thresholds, random_lightgbm


def _load(model: treelite.Model, folder, kind: str, *, sklearn_forest: bool = False, link_in_numpy: bool = False):
    library = build_forest_library(model, folder / "forest.so", round_float32=sklearn_forest)
    sha = hashlib.sha256(library.read_bytes()).hexdigest()
    return NativeModel(library, sha, kind, link_in_numpy=link_in_numpy)


@settings(max_examples=12)
@given(
    seed=st.integers(0, 2**31 - 1),
    objective=st.sampled_from(["binary", "multiclass", "regression"]),
    leaves=st.one_of(st.integers(2, 63), st.just(255)),
    rounds=st.integers(1, 30),
)
def test_lightgbm_models_are_reproduced_bit_for_bit(tmp_path_factory, seed, objective, leaves, rounds):
    """Categorical splits with unseen and negative categories, NaN in a feature that had NaN in training and in
    one that had none, rows on thresholds (inputs rounded to 2 decimals repeat), single-leaf trees."""
    booster, test = random_lightgbm(np.random.default_rng(seed), objective, leaves, rounds, on_thresholds)
    model = _load(treelite.frontend.from_lightgbm(booster), tmp_path_factory.mktemp("lgb"), objective)
    assert_equals_lightgbm(model, booster, test)


def test_hundreds_of_trees_and_wide_category_sets(tmp_path):
    # 500 trees of up to 63 leaves; a categorical feature with 100 levels, wider than tl2cgen's 64-bit masks.
    rng = np.random.default_rng(5)
    X = rng.normal(size=(5_000, 4))
    X[:, 3] = rng.integers(0, 100, size=5_000)
    X[rng.random(5_000) < 0.05, 0] = np.nan
    y = np.sin(X[:, 3]) * 3 + np.nan_to_num(X[:, 0]) + rng.normal(size=5_000) * 0.1
    params = {"objective": "regression", "num_leaves": 63, "verbose": -1, "num_threads": 1, "min_data_per_group": 5}
    params["max_cat_to_onehot"] = 1
    params["max_cat_threshold"] = 64
    booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=[3]), 500)
    test = np.vstack([X[:1_000], rng.normal(size=(1_000, 4))])
    test[1_000:, 3] = rng.integers(-3, 130, size=1_000)
    model = _load(treelite.frontend.from_lightgbm(booster), tmp_path, "regression")
    assert np.array_equal(model.predict(test), booster.predict(test))
    source = forest_source(treelite.frontend.from_lightgbm(booster), round_float32=False)
    assert "static const uint32_t cats_" in source and "[4]" in source  # a set of categories beyond 64


@pytest.mark.parametrize(
    "family", [RandomForestClassifier, ExtraTreesClassifier, RandomForestRegressor, ExtraTreesRegressor]
)
def test_scikit_learn_forests_are_reproduced_bit_for_bit(tmp_path, family):
    rng = np.random.default_rng(6)
    X = rng.normal(size=(2_000, 5))
    X[rng.random(2_000) < 0.05, 1] = np.nan  # scikit-learn's trees route missing values too
    classifier = family in (RandomForestClassifier, ExtraTreesClassifier)
    y = rng.integers(0, 3, size=2_000) if classifier else X[:, 0] * 2 + rng.normal(size=2_000)
    estimator = family(n_estimators=30, max_depth=8, random_state=0, n_jobs=1).fit(X, y)
    kind = "multiclass" if classifier else "regression"
    model = _load(import_sklearn_trees(estimator), tmp_path, kind, sklearn_forest=True)
    test = np.vstack([X[:500], rng.normal(size=(500, 5))])
    expected = estimator.predict_proba(test) if classifier else estimator.predict(test)
    assert np.max(np.abs(model.predict(test).reshape(expected.shape) - expected)) == 0.0


@settings(max_examples=10)
@given(
    seed=st.integers(0, 2**31 - 1),
    objective=st.sampled_from(["binary", "multiclass", "regression"]),
    leaves=st.integers(2, 63),
    iterations=st.integers(1, 30),
)
def test_hist_gradient_boosting_is_reproduced_bit_for_bit(tmp_path_factory, seed, objective, leaves, iterations):
    """scikit-learn's rules: NaN follows each split's missing direction (features with and without NaN in
    training), and so do categories it never saw and negative ones; rows repeat values, so many sit on a split."""
    rng = np.random.default_rng(seed)
    X = on_thresholds(rng, (600, 4))
    X[:, 3] = rng.integers(0, 5, size=600)
    X[rng.random(600) < 0.1, 1] = np.nan
    signal = X[:, 0] + np.nan_to_num(X[:, 1]) + (X[:, 3] == 2)
    options = {"max_iter": iterations, "max_leaf_nodes": leaves, "categorical_features": [3], "random_state": 0}
    options.update(early_stopping=False, min_samples_leaf=3)
    if objective == "regression":
        estimator = HistGradientBoostingRegressor(**options).fit(X, signal * 10.0)
    else:
        y = (signal > 0.5).astype(int) if objective == "binary" else np.digitize(signal, [0.0, 1.0])
        estimator = HistGradientBoostingClassifier(**options).fit(X, y)
    test = np.vstack([X, on_thresholds(rng, (600, 4))])
    test[600:, 3] = rng.integers(-2, 8, size=600)  # unseen and negative categories
    test[rng.random(1_200) < 0.1, 2] = np.nan  # never missing in training
    test[rng.random(1_200) < 0.05, 3] = np.nan
    model = _load(import_sklearn_trees(estimator), tmp_path_factory.mktemp("hgb"), objective, link_in_numpy=True)
    expected = estimator.predict(test) if objective == "regression" else estimator.predict_proba(test)
    if objective == "binary":
        expected = expected[:, 1]
    assert np.max(np.abs(model.predict(test).reshape(expected.shape) - expected)) == 0.0
    margins = estimator._raw_predict(test)
    assert np.array_equal(model.predict(test, raw=True).reshape(margins.shape), margins)


@pytest.fixture(scope="module")
def multiclass_model(tmp_path_factory):
    booster, test = random_lightgbm(np.random.default_rng(8), "multiclass", 31, 40, on_thresholds)
    folder = tmp_path_factory.mktemp("threads")
    rows = np.vstack([test] * 4)  # 4,000 rows: enough for several threads of 256 rows or more
    return booster, _load(treelite.frontend.from_lightgbm(booster), folder, "multiclass"), rows


@settings(max_examples=15, deadline=None)
@given(n_rows=st.integers(0, 4_000), threads=st.integers(1, 9))
def test_threads_give_the_one_thread_bits(multiclass_model, n_rows, threads):
    booster, model, rows = multiclass_model
    one = model.predict(rows[:n_rows])
    assert np.array_equal(model.predict(rows[:n_rows], threads=threads), one)
    if n_rows:
        assert np.array_equal(one, booster.predict(rows[:n_rows]))


def test_concurrent_calls_on_one_model_are_safe(multiclass_model):
    booster, model, rows = multiclass_model
    expected = booster.predict(rows)
    # Eight Python threads call the one loaded library at once (cffi releases the GIL), some of them threaded.
    with ThreadPoolExecutor(max_workers=8) as pool:
        parts = [(k * 250, (k + 1) * 250 + 1500) for k in range(16)]
        results = pool.map(lambda span: (span, model.predict(rows[span[0] : span[1]], threads=1 + span[0] % 3)), parts)
        for (start, end), got in results:
            assert np.array_equal(got, expected[start:end])


def test_the_single_row_entry_gives_the_batch_bits(multiclass_model):
    _, model, rows = multiclass_model
    batch = model.predict(rows[:300])
    assert np.array_equal(np.array([model.predict_row(row) for row in rows[:300]]), batch)
    assert np.array_equal(model.predict_row(rows[0].tolist()), batch[0])  # a list is converted once
    with pytest.raises(CompileError, match="a row must have >= 4 values, not 3"):
        model.predict_row(rows[0, :3])
    with pytest.raises(CompileError, match="threads must be >= 1"):
        model.predict(rows, threads=0)


@settings(max_examples=8)
@given(
    seed=st.integers(0, 2**31 - 1),
    objective=st.sampled_from(["binary", "multiclass", "regression"]),
    leaves=st.integers(2, 64),
    rounds=st.integers(1, 30),
    n_rows=st.integers(1, 1_000),
)
def test_the_avx2_path_gives_lightgbms_bits(tmp_path_factory, seed, objective, leaves, rounds, n_rows):
    """The bitmask path over 4 rows at a time (row counts that are not multiples of 4 end on the scalar path):
    categorical splits, NaN, unseen and negative categories, rows on thresholds, as the portable path."""
    booster, test = random_lightgbm(np.random.default_rng(seed), objective, leaves, rounds, on_thresholds)
    folder = tmp_path_factory.mktemp("avx2")
    library = build_forest_library(treelite.frontend.from_lightgbm(booster), folder / "f.so", round_float32=False,
                                   isa="avx2")  # fmt: skip
    assert "#define IOT_AVX2 1" in forest_source(treelite.frontend.from_lightgbm(booster), round_float32=False,
                                                  isa="avx2")  # fmt: skip
    model = NativeModel(library, hashlib.sha256(library.read_bytes()).hexdigest(), objective)
    assert_equals_lightgbm(model, booster, test[:n_rows])


def test_the_avx2_path_says_what_it_does_not_cover(tmp_path):
    rng = np.random.default_rng(9)
    X = rng.normal(size=(500, 3))
    forest = RandomForestClassifier(n_estimators=3, max_depth=4, random_state=0, n_jobs=1).fit(X, X[:, 0] > 0)
    with pytest.raises(CompileError, match="does not round inputs to float32"):
        forest_source(import_sklearn_trees(forest), round_float32=True, isa="avx2")
    deep = lgb.train({"objective": "regression", "num_leaves": 80, "min_data_in_leaf": 1, "verbose": -1},
                     lgb.Dataset(X, X[:, 0] + X[:, 1] * X[:, 2]), 1)  # fmt: skip
    with pytest.raises(CompileError, match="tree 0 has 80 leaves; the AVX2 path holds 64"):
        forest_source(treelite.frontend.from_lightgbm(deep), round_float32=False, isa="avx2")
    with pytest.raises(CompileError, match="isa must be one of"):
        forest_source(treelite.frontend.from_lightgbm(deep), round_float32=False, isa="neon")
