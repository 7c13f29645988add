"""An unsupervised anomaly detector built from LightGBM regressors: a tree "autoencoder".

For each sensor, a LightGBM regressor predicts the sensor's current value from the features that do not read
that sensor (the other sensors' features, the time features and the status). Trained on normal rows only, it
learns what the sensor should read given everything else; a large error means the sensor disagrees with the
rest of the machine. Each sensor's error is standardized by the spread of its errors on normal rows, and the
anomaly score of a row is the root mean square of the standardized errors of its non-missing sensors.

No label is used to fit it; labels are used only to pick the alarm threshold on a validation split and to
evaluate it (PR-AUC, F1) on a test split (:func:`evaluate_autoencoder`).

Examples
--------
>>> from engine.data.synthetic import generate
>>> from engine.models.tasks import inputs_and_targets
>>> X, y = inputs_and_targets(generate(4_000, mode="fleet", machines=10, seed=2))
>>> detector = LightGBMAutoencoder(n_estimators=30).fit(X[y["anomaly_flag"] == 0])
>>> detector.score(X).shape
(4000,)
>>> [FEATURE_NAMES[j] for j in detector.inputs_["temperature"][:3]]
['vibration', 'humidity', 'pressure']
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

from engine.models.cross_validation import choose_threshold
from engine.models.tasks import INPUT_COLUMNS, STATUS_COLUMN
from kernels.names import FEATURE_NAMES, RAW, SENSOR_SHORT  # noqa: F401  (FEATURE_NAMES: doctest)

__all__ = ["AutoencoderEvaluation", "LightGBMAutoencoder", "evaluate_autoencoder", "sensors_read_by"]

INTERACTION_SENSORS = {
    "temp_x_vib": ("temp", "vib"),
    "hum_x_pres": ("hum", "pres"),
    "energy_x_temp": ("energy", "temp"),
}


def sensors_read_by(feature: str) -> frozenset[str]:
    """Short names of the sensors a feature reads (empty for the time features and the status).

    Examples
    --------
    >>> sorted(sensors_read_by("temp_x_vib")), sorted(sensors_read_by("pressure")), sorted(sensors_read_by("hour"))
    (['temp', 'vib'], ['pres'], [])
    """
    if feature in INTERACTION_SENSORS:
        return frozenset(INTERACTION_SENSORS[feature])
    if feature in RAW:
        return frozenset({SENSOR_SHORT[RAW.index(feature)]})
    prefix = feature.split("_")[0]
    return frozenset({prefix}) if prefix in SENSOR_SHORT else frozenset()


class LightGBMAutoencoder:
    """Per-sensor LightGBM regressors whose standardized errors make an anomaly score.

    Parameters
    ----------
    n_estimators, num_leaves, learning_rate : LightGBM settings of each regressor.
    seed : int, default=0
    n_jobs : int, default=2

    Attributes
    ----------
    inputs_ : dict of sensor -> ndarray of int
        The input columns (indices into :data:`engine.models.tasks.INPUT_COLUMNS`) of each sensor's regressor.
    models_ : dict of sensor -> lightgbm.Booster
    error_scale_ : dict of sensor -> float
        Standard deviation of each regressor's error on the normal rows it was fitted on.
    """

    def __init__(self, *, n_estimators: int = 150, num_leaves: int = 31, learning_rate: float = 0.05, seed=0, n_jobs=2):
        self.n_estimators = n_estimators
        self.num_leaves = num_leaves
        self.learning_rate = learning_rate
        self.seed = seed
        self.n_jobs = n_jobs

    def fit(self, X_normal: np.ndarray) -> LightGBMAutoencoder:
        """Fit on rows believed normal (inputs of :func:`engine.models.tasks.design_matrix`)."""
        self.inputs_, self.models_, self.error_scale_ = {}, {}, {}
        for s, (sensor, short) in enumerate(zip(RAW, SENSOR_SHORT, strict=True)):
            columns = np.array(
                [j for j, name in enumerate(INPUT_COLUMNS) if short not in sensors_read_by(name)], dtype=np.int64
            )
            target = X_normal[:, s]
            known = ~np.isnan(target)
            categorical = [int(np.flatnonzero(columns == STATUS_COLUMN)[0])]
            model = lgb.LGBMRegressor(
                n_estimators=self.n_estimators,
                num_leaves=self.num_leaves,
                learning_rate=self.learning_rate,
                random_state=self.seed,
                n_jobs=self.n_jobs,
                deterministic=True,
                force_row_wise=True,
                verbose=-1,
            ).fit(X_normal[known][:, columns], target[known], categorical_feature=categorical)
            error = target[known] - model.predict(X_normal[known][:, columns])
            self.inputs_[sensor] = columns
            self.models_[sensor] = model.booster_
            self.error_scale_[sensor] = float(np.std(error)) or 1.0
        return self

    def standardized_errors(self, X: np.ndarray) -> np.ndarray:
        """Per-sensor standardized errors, shape (n, 5); NaN where the sensor is missing."""
        out = np.empty((X.shape[0], len(RAW)))
        for s, sensor in enumerate(RAW):
            predicted = self.models_[sensor].predict(X[:, self.inputs_[sensor]], num_threads=self.n_jobs)
            out[:, s] = (X[:, s] - predicted) / self.error_scale_[sensor]
        return out

    def score(self, X: np.ndarray) -> np.ndarray:
        """Anomaly score of each row: RMS of the standardized errors of its non-missing sensors (NaN if none)."""
        errors = self.standardized_errors(X)
        known = ~np.isnan(errors)
        squares = np.where(known, errors, 0.0) ** 2
        count = known.sum(axis=1)
        return np.sqrt(np.divide(squares.sum(axis=1), count, out=np.full(len(X), np.nan), where=count > 0))


@dataclass(frozen=True)
class AutoencoderEvaluation:
    """The detector on a held-out test split: PR-AUC, and F1/precision/recall at the validation threshold."""

    data: str
    rows_train_normal: int
    rows_validation: int
    rows_test: int
    positive_rate: float
    pr_auc: float
    threshold: float
    f1: float
    precision: float
    recall: float


def evaluate_autoencoder(
    X: np.ndarray, anomaly: np.ndarray, *, data: str, seed: int = 0, detector: LightGBMAutoencoder | None = None
) -> AutoencoderEvaluation:
    """Split rows 60/20/20 (train/validation/test) at random, fit on the normal training rows, choose the
    F1-best threshold on validation, and measure PR-AUC and F1 on test."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    train, validation, test = np.split(order, [int(0.6 * len(X)), int(0.8 * len(X))])
    normal_train = train[anomaly[train] == 0]
    detector = detector or LightGBMAutoencoder(seed=seed)
    detector.fit(X[normal_train])
    scores_validation = np.nan_to_num(detector.score(X[validation]), nan=0.0)
    threshold = choose_threshold(anomaly[validation], scores_validation)
    scores_test = np.nan_to_num(detector.score(X[test]), nan=0.0)
    predicted = (scores_test >= threshold).astype(np.int64)
    return AutoencoderEvaluation(
        data=data,
        rows_train_normal=len(normal_train),
        rows_validation=len(validation),
        rows_test=len(test),
        positive_rate=float(anomaly[test].mean()),
        pr_auc=float(average_precision_score(anomaly[test], scores_test)),
        threshold=threshold,
        f1=float(f1_score(anomaly[test], predicted, zero_division=0)),
        precision=float(precision_score(anomaly[test], predicted, zero_division=0)),
        recall=float(recall_score(anomaly[test], predicted, zero_division=0)),
    )
