"""Fitted models saved in their own formats, never pickled, and read back as predictors.

=========================  ===============================  =========================================
family                     file                             read back with
=========================  ===============================  =========================================
lightgbm                   LightGBM model text (``.txt``)   ``lightgbm.Booster(model_str=...)``
random_forest,             treelite checkpoint (``.tl``)    ``treelite.Model.deserialize_bytes`` and
extra_trees,                                                ``treelite.gtil.predict``
hist_gradient_boosting
logistic_regression,       JSON (``.json``): imputer        numpy, following scikit-learn's formulas
gaussian_nb, ridge, mean   medians, scaler mean/scale,
                           coefficients
=========================  ===============================  =========================================

Every predictor answers :meth:`predict` the same way: the probability of the positive class for binary tasks
(shape (n,)), class probabilities for multiclass tasks (shape (n, k)), values for regression (shape (n,)).
Loading takes bytes, so a bundle can hash exactly the bytes it then parses.

Examples
--------
>>> import numpy as np, lightgbm as lgb
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(500, 68)); X[:, 67] = rng.integers(0, 3, 500); y = (X[:, 0] > 0).astype(int)
>>> model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y)
>>> saved = save_model(model, "lightgbm", "binary")
>>> saved.extension, type(saved.data)
('.txt', <class 'bytes'>)
>>> restored = load_model(saved.data, "lightgbm", "binary")
>>> bool(np.array_equal(restored.predict(X), model.predict_proba(X)[:, 1]))
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import treelite
from scipy.special import expit, logsumexp, softmax
from sklearn.pipeline import Pipeline

from compile.sklearn_trees import import_sklearn_trees
from engine.errors import InvalidInputError
from engine.models.tasks import STATUS_COLUMN
from engine.models.zoo import expand_status

__all__ = ["TABULAR_FAMILIES", "TREELITE_FAMILIES", "SavedModel", "load_model", "save_model"]

TREELITE_FAMILIES = ("random_forest", "extra_trees", "hist_gradient_boosting")
TABULAR_FAMILIES = ("logistic_regression", "gaussian_nb", "ridge", "mean")
TABULAR_FORMAT = "iotengine.tabular_model/1"


@dataclass(frozen=True)
class SavedModel:
    """A model's file contents and the extension its format uses."""

    data: bytes
    extension: str


def save_model(estimator, family: str, kind: str) -> SavedModel:
    """Serialize a fitted estimator of a :mod:`engine.models.zoo` family in that family's own format."""
    if family == "lightgbm":
        return SavedModel(estimator.booster_.model_to_string().encode(), ".txt")
    if family in TREELITE_FAMILIES:
        # with scikit-learn's own leaf values: treelite's importer renormalises forest leaves (compile/sklearn_trees.py)
        return SavedModel(bytes(import_sklearn_trees(estimator).serialize_bytes()), ".tl")
    if family in TABULAR_FAMILIES:
        return SavedModel(json.dumps(_tabular_document(estimator, family, kind), indent=1).encode(), ".json")
    raise InvalidInputError(f"unknown model family {family!r}")


def load_model(data: bytes, family: str, kind: str):
    """A predictor (an object with ``predict(X)``) from bytes written by :func:`save_model`."""
    if family == "lightgbm":
        return LightGBMPredictor(lgb.Booster(model_str=data.decode()), kind)
    if family in TREELITE_FAMILIES:
        return TreelitePredictor(
            treelite.Model.deserialize_bytes(data), kind, boosted=family == "hist_gradient_boosting"
        )
    if family in TABULAR_FAMILIES:
        return TabularPredictor(json.loads(data), kind)
    raise InvalidInputError(f"unknown model family {family!r}")


class LightGBMPredictor:
    """A LightGBM booster, single-threaded, answering :meth:`predict` in this module's convention."""

    family = "lightgbm"

    def __init__(self, booster: lgb.Booster, kind: str):
        self.booster = booster
        self.kind = kind

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(X, num_threads=1))


class TreelitePredictor:
    """A scikit-learn tree ensemble imported by treelite, predicted by treelite's reference interpreter (GTIL)."""

    family = "treelite"

    def __init__(self, model: treelite.Model, kind: str, *, boosted: bool):
        self.model = model
        self.kind = kind
        self.boosted = boosted

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not self.boosted:
            # scikit-learn's forests compare float32(x) with their thresholds; rounding x the same way first
            # keeps a value just above a threshold in float64 but not in float32 on sklearn's side.
            X = np.asarray(X, dtype=np.float32)
        # Boosted models: GTIL's own sigmoid/softmax runs in float32, so take the margin and apply the link here.
        out = treelite.gtil.predict(
            self.model, np.ascontiguousarray(X, dtype=np.float64), nthread=1, pred_margin=self.boosted
        )
        out = out.reshape(out.shape[0], -1)  # (n, targets=1, classes) -> (n, classes)
        if self.kind == "regression":
            return out[:, 0].copy()
        if self.boosted:
            return expit(out[:, 0]) if self.kind == "binary" else softmax(out, axis=1)
        return out[:, -1].copy() if self.kind == "binary" else out  # forests give both class probabilities


def _tabular_document(estimator, family: str, kind: str) -> dict:
    document: dict = {"format": TABULAR_FORMAT, "family": family, "kind": kind}
    if family == "mean":
        document["constant"] = float(np.ravel(estimator.constant_)[0])
        return document
    assert isinstance(estimator, Pipeline), "tabular families are pipelines from engine.models.zoo"
    steps = estimator.named_steps
    document["status_column"] = STATUS_COLUMN
    document["impute_medians"] = steps["impute"].statistics_.tolist()
    if "scale" in steps:
        document["scale_mean"] = steps["scale"].mean_.tolist()
        document["scale_scale"] = steps["scale"].scale_.tolist()
    model = steps["model"]
    if family == "gaussian_nb":
        document["class_prior"] = model.class_prior_.tolist()
        document["theta"] = model.theta_.tolist()
        document["var"] = model.var_.tolist()
    else:
        document["coef"] = np.atleast_2d(model.coef_).tolist()
        document["intercept"] = np.atleast_1d(model.intercept_).tolist()
    if hasattr(model, "classes_"):
        document["classes"] = model.classes_.tolist()
    return document


class TabularPredictor:
    """Linear, naive Bayes and constant models from their JSON parameters, with scikit-learn's formulas."""

    family = "tabular"

    def __init__(self, document: dict, kind: str):
        if document.get("format") != TABULAR_FORMAT:
            raise InvalidInputError(f"not an iotengine tabular model (format {document.get('format')!r})")
        self.document = document
        self.kind = kind
        self._arrays = {
            key: np.asarray(value, dtype=np.float64)
            for key, value in document.items()
            if isinstance(value, list) and key != "classes"
        }

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        a = self._arrays
        Z = expand_status(X, self.document["status_column"])
        Z = np.where(np.isnan(Z), a["impute_medians"][None, :], Z)
        if "scale_mean" in a:
            Z = (Z - a["scale_mean"]) / a["scale_scale"]
        return Z

    def predict(self, X: np.ndarray) -> np.ndarray:
        family = self.document["family"]
        if family == "mean":
            return np.full(len(X), self.document["constant"])
        Z = self._prepare(X)
        a = self._arrays
        if family == "gaussian_nb":
            # sklearn.naive_bayes.GaussianNB._joint_log_likelihood, then predict_proba.
            jll = np.empty((Z.shape[0], a["theta"].shape[0]))
            for i in range(a["theta"].shape[0]):
                n_ij = -0.5 * np.sum(np.log(2.0 * np.pi * a["var"][i, :]))
                n_ij -= 0.5 * np.sum(((Z - a["theta"][i, :]) ** 2) / (a["var"][i, :]), 1)
                jll[:, i] = np.log(a["class_prior"][i]) + n_ij
            proba = np.exp(jll - np.atleast_2d(logsumexp(jll, axis=1)).T)
            return proba[:, 1] if self.kind == "binary" else proba
        decision = Z @ a["coef"].T + a["intercept"]
        if self.kind == "regression":
            return decision[:, 0]
        if self.kind == "binary":
            return expit(decision[:, 0])
        decision -= decision.max(axis=1, keepdims=True)
        proba = np.exp(decision)
        return proba / proba.sum(axis=1, keepdims=True)
