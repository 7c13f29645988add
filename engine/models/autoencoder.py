"""The unsupervised anomaly detector: a LightGBM "autoencoder" of five per-sensor regressors.

For each sensor, a compact LightGBM regressor predicts the sensor's current value from inputs that do not contain
it: the other sensors' current values and features, every sensor's machine history before the sample (mean and
std of the machine's earlier values, :mod:`kernels.history`), the calendar and the status. Trained on normal
samples, it learns what the sensor should read given the rest of the machine and its own past; a residual far
outside its normal spread means the sensor disagrees with both.

Why these inputs and not the sensor's own rolling mean, EWM or diff: those are computed with the current value
(a leak), and their previous-sample forms follow a slow degradation drift so closely that the drift leaves almost
no residual (they halved the fleet PR-AUC when tried while choosing the inputs, in an experiment that is not part
of the project). The machine history is the long memory that a drift cannot hide in.

Scores:

- residual of sensor s: ``(x_s - predicted_s - center_s) / scale_s``, with the median and the MAD (times 1.4826,
  a normal law's std) of the residuals on held-out normal samples: robust to the anomalies that slip into them;
- score: the largest |residual| over the sensors present (NaN when none is): a sample is anomalous when any
  sensor leaves its band, as the fleet's labels define it (kernels/fleet_sim.py);
- threshold: the ``1 - false_alarm_rate`` quantile of the scores of those held-out normal samples (default rate
  :data:`FALSE_ALARM_RATE`), so no anomaly label is needed to set it.

Without labels, :meth:`LightGBMAutoencoder.fit` trains on every sample with the Huber loss, so that the rare
anomalies pull the fit less than squared error would.

Examples
--------
>>> from engine.data.synthetic import generate
>>> table = generate(6_000, mode="fleet", machines=20, seed=2, interval_s=300)
>>> D, y = detector_inputs_and_targets(table)
>>> detector = LightGBMAutoencoder(n_estimators=10).fit(D, normal=y["anomaly_flag"] == 0)
>>> detector = detector.calibrate(D, normal=y["anomaly_flag"] == 0)
>>> score, residuals = detector.score(D)
>>> score.shape, residuals.shape
((6000,), (6000, 5))
>>> inputs = [DETECTOR_COLUMNS[j] for j in detector.columns_[0]]
>>> inputs[0], "temp_history_mean" in inputs, "temp_roll_mean_5" in inputs
('vibration', True, False)
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from engine.data.loading import load_telemetry
from engine.errors import InvalidInputError
from engine.features.batch import features_of_valid_table
from engine.features.batch_driver import run_history
from engine.models.tasks import INPUT_COLUMNS, STATUS_COLUMN, design_matrix, targets
from kernels.history import HISTORY_NAMES
from kernels.names import RAW, SENSOR_SHORT

__all__ = [
    "DETECTOR_COLUMNS",
    "FALSE_ALARM_RATE",
    "RESIDUAL_NAMES",
    "SCORE_NAME",
    "LightGBMAutoencoder",
    "anomaly_score",
    "detector_inputs",
    "detector_inputs_and_targets",
    "detector_matrix",
    "sensor_columns",
    "sensors_read_by",
    "standardized_residuals",
]

DETECTOR_COLUMNS: tuple[str, ...] = (*INPUT_COLUMNS, *HISTORY_NAMES)
SCORE_NAME = "unsupervised_anomaly"
RESIDUAL_NAMES: tuple[str, ...] = tuple(f"residual_{sensor}" for sensor in RAW)
# 1% of normal samples over the threshold: at one sample per 5 minutes, about 3 per machine-day before the
# stream's hysteresis merges them (engine/stream/alerts.py).
FALSE_ALARM_RATE = 0.01
MAD_TO_STD = 1.4826  # the MAD of a normal law times this is its std

INTERACTION_SENSORS = {
    "temp_x_vib": ("temp", "vib"),
    "hum_x_pres": ("hum", "pres"),
    "energy_x_temp": ("energy", "temp"),
}


def sensors_read_by(feature: str) -> frozenset[str]:
    """Short names of the sensors whose *current value* a feature reads (empty for the time features, the status
    and the machine history, which reads only earlier samples).

    Examples
    --------
    >>> sorted(sensors_read_by("temp_x_vib")), sorted(sensors_read_by("pressure")), sorted(sensors_read_by("hour"))
    (['temp', 'vib'], ['pres'], [])
    >>> sorted(sensors_read_by("temp_history_mean"))
    []
    """
    if feature in HISTORY_NAMES:
        return frozenset()
    if feature in INTERACTION_SENSORS:
        return frozenset(INTERACTION_SENSORS[feature])
    if feature in RAW:
        return frozenset({SENSOR_SHORT[RAW.index(feature)]})
    prefix = feature.split("_")[0]
    return frozenset({prefix}) if prefix in SENSOR_SHORT else frozenset()


def sensor_columns(sensor: int) -> tuple[int, ...]:
    """The inputs (indices into :data:`DETECTOR_COLUMNS`) of the regressor of sensor ``sensor`` (0..4)."""
    short = SENSOR_SHORT[sensor]
    return tuple(j for j, name in enumerate(DETECTOR_COLUMNS) if short not in sensors_read_by(name))


def detector_matrix(X: np.ndarray, history: np.ndarray) -> np.ndarray:
    """The detector's (n, 78) inputs: the 68 model inputs, then the 10 history columns."""
    X = np.asarray(X, dtype=np.float64)
    history = np.asarray(history, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(INPUT_COLUMNS):
        raise InvalidInputError(f"inputs must have shape (n, {len(INPUT_COLUMNS)}), not {X.shape}")
    if history.shape != (X.shape[0], len(HISTORY_NAMES)):
        raise InvalidInputError(f"history must have shape ({X.shape[0]}, {len(HISTORY_NAMES)}), not {history.shape}")
    return np.ascontiguousarray(np.concatenate([X, history], axis=1))


def detector_inputs(table, *, utc_offset_minutes: int = 0) -> np.ndarray:
    """The (n, 78) detector inputs of a telemetry table (labels are not needed)."""
    table = load_telemetry(table)
    X = design_matrix(features_of_valid_table(table, utc_offset_minutes), table.column("machine_status").to_numpy())
    return detector_matrix(X, run_history(table))


def detector_inputs_and_targets(table, *, utc_offset_minutes: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`detector_inputs` and the five tasks' targets of a labelled table."""
    table = load_telemetry(table)
    return detector_inputs(table, utc_offset_minutes=utc_offset_minutes), targets(table)


def standardized_residuals(actual: np.ndarray, predicted: np.ndarray, center, scale) -> np.ndarray:
    """``(actual - predicted - center) / scale`` per sensor, shape (n, 5); NaN where the sensor is missing
    (NaN or infinite)."""
    actual = np.asarray(actual, dtype=np.float64)
    residuals = (actual - predicted - np.asarray(center)) / np.asarray(scale)
    return np.where(np.isfinite(actual), residuals, np.nan)


def anomaly_score(residuals: np.ndarray) -> np.ndarray:
    """The largest |residual| of each row over its sensors present; NaN for a row with none."""
    magnitude = np.abs(residuals)
    present = ~np.isnan(magnitude)
    # The maximum by a left-to-right pass, as iot_score.c computes it (same value for any order: max is exact).
    score = np.max(np.where(present, magnitude, -np.inf), axis=1)
    return np.where(present.any(axis=1), score, np.nan)


class LightGBMAutoencoder:
    """Five per-sensor LightGBM regressors, their residual scales and an alarm threshold.

    Parameters
    ----------
    n_estimators, num_leaves, learning_rate, min_child_samples : LightGBM settings of every regressor. The
        defaults keep the five small enough for a microcontroller (150 trees of 8 leaves: under 64 KB of C).
    seed : int, default=0
    n_jobs : int, default=2

    Attributes
    ----------
    columns_ : tuple of 5 tuples of int
        Each regressor's inputs, indices into :data:`DETECTOR_COLUMNS` (:func:`sensor_columns`).
    boosters_ : list of 5 lightgbm.Booster
    robust_ : bool
        True when fitted without labels (Huber loss on every sample).
    center_, scale_ : ndarray of shape (5,)
        Median and MAD-based std of each sensor's residual on normal held-out samples (:meth:`calibrate`).
    threshold_ : float
    false_alarm_rate_ : float
    """

    def __init__(
        self,
        *,
        n_estimators: int = 30,
        num_leaves: int = 8,
        learning_rate: float = 0.2,
        min_child_samples: int = 50,
        seed: int = 0,
        n_jobs: int = 2,
    ):
        self.n_estimators = n_estimators
        self.num_leaves = num_leaves
        self.learning_rate = learning_rate
        self.min_child_samples = min_child_samples
        self.seed = seed
        self.n_jobs = n_jobs

    def fit(self, D: np.ndarray, normal: np.ndarray | None = None) -> LightGBMAutoencoder:
        """Fit the regressors on detector inputs ``D`` (n, 78): on the rows where ``normal`` is true, or, without
        labels (``normal=None``), on every row with the Huber loss."""
        D = _checked(D)
        rows = np.ones(len(D), dtype=bool) if normal is None else _mask(normal, len(D), "normal")
        self.robust_ = normal is None
        self.columns_ = tuple(sensor_columns(s) for s in range(len(RAW)))
        self.boosters_ = []
        for s, columns in enumerate(self.columns_):
            target = D[:, s]
            train = rows & np.isfinite(target)
            if train.sum() < 2 * self.min_child_samples:
                raise InvalidInputError(
                    f"{RAW[s]}: {int(train.sum())} samples to fit its regressor; at least {2 * self.min_child_samples}"
                )
            params = {}
            if self.robust_:  # Huber's delta at the target's own robust spread: outliers pull linearly, not squared
                spread = _robust_std(target[train])
                params = {"objective": "huber", "alpha": 1.345 * spread}
            model = lgb.LGBMRegressor(
                n_estimators=self.n_estimators,
                num_leaves=self.num_leaves,
                learning_rate=self.learning_rate,
                min_child_samples=self.min_child_samples,
                random_state=self.seed,
                n_jobs=self.n_jobs,
                deterministic=True,
                force_row_wise=True,
                verbose=-1,
                **params,
            )
            status = columns.index(STATUS_COLUMN)
            model.fit(D[train][:, columns], target[train], categorical_feature=[status])
            self.boosters_.append(model.booster_)
        return self

    def predictions(self, D: np.ndarray) -> np.ndarray:
        """Each regressor's prediction of its sensor, shape (n, 5)."""
        D = _checked(D)
        out = np.empty((len(D), len(RAW)))
        for s, (booster, columns) in enumerate(zip(self.boosters_, self.columns_, strict=True)):
            out[:, s] = booster.predict(D[:, columns], num_threads=self.n_jobs)
        return out

    def calibrate(
        self, D: np.ndarray, normal: np.ndarray | None = None, *, false_alarm_rate: float = FALSE_ALARM_RATE
    ) -> LightGBMAutoencoder:
        """Learn the residual scales and the threshold on held-out rows of ``D``: those where ``normal`` is true
        (all rows without labels)."""
        if not 0.0 < false_alarm_rate < 1.0:
            raise InvalidInputError(f"false_alarm_rate must be between 0 and 1, not {false_alarm_rate}")
        D = _checked(D)
        rows = np.ones(len(D), dtype=bool) if normal is None else _mask(normal, len(D), "normal")
        actual = D[rows][:, : len(RAW)]
        predicted = self.predictions(D[rows])
        center, scale = np.empty(len(RAW)), np.empty(len(RAW))
        for s in range(len(RAW)):
            known = np.isfinite(actual[:, s])
            if not known.any():
                raise InvalidInputError(f"{RAW[s]}: no calibration sample has a value")
            residual = actual[known, s] - predicted[known, s]
            center[s] = np.median(residual)
            scale[s] = _robust_std(residual)
        self.center_, self.scale_ = center, scale
        score = anomaly_score(standardized_residuals(actual, predicted, center, scale))
        score = score[~np.isnan(score)]
        self.threshold_ = float(np.quantile(score, 1.0 - false_alarm_rate, method="higher"))
        self.false_alarm_rate_ = float(false_alarm_rate)
        return self

    def score(self, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(score, residuals)`` of every row: shapes (n,) and (n, 5)."""
        D = _checked(D)
        residuals = standardized_residuals(D[:, : len(RAW)], self.predictions(D), self.center_, self.scale_)
        return anomaly_score(residuals), residuals


def _robust_std(values: np.ndarray) -> float:
    """MAD times 1.4826; the std when the MAD is 0 (a sensor that rarely changes), 1.0 when both are."""
    mad = float(np.median(np.abs(values - np.median(values)))) * MAD_TO_STD
    return mad if mad > 0 else (float(np.std(values)) or 1.0)


def _checked(D: np.ndarray) -> np.ndarray:
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[1] != len(DETECTOR_COLUMNS):
        raise InvalidInputError(f"detector inputs must have shape (n, {len(DETECTOR_COLUMNS)}), not {D.shape}")
    return D


def _mask(mask, n: int, name: str) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (n,):
        raise InvalidInputError(f"{name} must have shape ({n},), not {mask.shape}")
    return mask
