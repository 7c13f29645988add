"""The unsupervised detector on held-out data, beside the peers fitted on the same samples in the same run.

Peers:

- scikit-learn's IsolationForest on the same 78 inputs (missing values as the training medians), fitted on the
  same normal training samples;
- the rolling z-score rule on the raw sensors (:mod:`kernels.zscore_rule`, window :data:`ZSCORE_WINDOW`), which
  fits nothing.

Every detector's threshold comes from the same false-alarm rate on the same normal calibration samples, so their
precision and recall compare at one budget of false alarms. For each holdout: PR-AUC of the anomaly labels,
precision/recall/F1 at the threshold, and false alarms per machine-day (false positives over the machines' time
spans). On Kaggle-mode data the labels are a one-sided rule on two raw sensors (temperature > 90 or
vibration > 80): a score that flags departures from normal in either direction cannot rank the high side first,
so the table adds the *two-sided ceiling*: the best PR-AUC of |robust z| of temperature, of vibration, or their
maximum, scores that know which sensors the rule reads but, being unsupervised, not its direction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score

from engine.data.loading import load_telemetry
from engine.features.batch_driver import run_zscore_rule
from engine.models.autoencoder import FALSE_ALARM_RATE, MAD_TO_STD, LightGBMAutoencoder, detector_inputs_and_targets

__all__ = ["DETECTORS", "ZSCORE_WINDOW", "DetectorResult", "HoldoutScores", "evaluate_detectors"]

DETECTORS = ("lightgbm_autoencoder", "isolation_forest", "rolling_zscore")
ZSCORE_WINDOW = 12  # an hour of samples at the fleet's 5 minutes


@dataclass(frozen=True)
class DetectorResult:
    """One detector on one holdout."""

    data: str
    detector: str
    rows: int
    positives: int
    pr_auc: float
    threshold: float
    precision: float
    recall: float
    f1: float
    false_alarms_per_machine_day: float

    def as_row(self) -> dict:
        """The fields, with None for the figures a ranking has not (NaN is not JSON)."""
        return {k: None if isinstance(v, float) and v != v else v for k, v in asdict(self).items()}


@dataclass
class HoldoutScores:
    """The scores of every detector on one holdout, with what a chart needs (timestamps, machines, labels)."""

    data: str
    timestamps: np.ndarray
    machines: np.ndarray
    labels: np.ndarray
    scores: dict[str, np.ndarray]
    thresholds: dict[str, float]


def evaluate_detectors(
    table,
    calibrate: np.ndarray,
    holdouts: dict,
    *,
    detector: LightGBMAutoencoder | None = None,
    false_alarm_rate: float = FALSE_ALARM_RATE,
    ceiling: tuple[str, ...] = (),
    seed: int = 0,
    utc_offset_minutes: int = 0,
) -> tuple[LightGBMAutoencoder, list[DetectorResult], list[HoldoutScores]]:
    """Fit the autoencoder and IsolationForest on the normal rows of ``table`` where ``calibrate`` is false,
    set every threshold on the normal rows where it is true, and evaluate them on each labelled holdout
    (name -> table). ``ceiling`` names the holdouts that get the two-sided ceiling (Kaggle-mode data); the
    calendar inputs are local time at ``utc_offset_minutes``.

    Returns the fitted (and calibrated) autoencoder, one result per detector and holdout, and the scores.
    """
    table = load_telemetry(table)
    D, y = detector_inputs_and_targets(table, utc_offset_minutes=utc_offset_minutes)
    normal = y["anomaly_flag"] == 0
    calibrate = np.asarray(calibrate, dtype=bool)
    fit_rows, calibration_rows = normal & ~calibrate, normal & calibrate
    detector = detector or LightGBMAutoencoder(seed=seed)
    detector.fit(D[~calibrate], normal=normal[~calibrate])
    detector.calibrate(D[calibrate], normal=normal[calibrate], false_alarm_rate=false_alarm_rate)

    medians = np.nanmedian(D[fit_rows], axis=0)
    medians = np.where(np.isnan(medians), 0.0, medians)
    forest = IsolationForest(n_estimators=100, random_state=seed, n_jobs=detector.n_jobs)
    forest.fit(_imputed(D[fit_rows], medians))
    zscore = run_zscore_rule(table, ZSCORE_WINDOW)
    calibration_scores = {
        "lightgbm_autoencoder": detector.score(D[calibration_rows])[0],
        "isolation_forest": -forest.score_samples(_imputed(D[calibration_rows], medians)),
        "rolling_zscore": zscore[calibration_rows],
    }
    thresholds = {name: _threshold(scores, false_alarm_rate) for name, scores in calibration_scores.items()}
    thresholds["lightgbm_autoencoder"] = detector.threshold_
    center = np.median(D[fit_rows][:, :2], axis=0)
    spread = np.median(np.abs(D[fit_rows][:, :2] - center), axis=0) * MAD_TO_STD

    results: list[DetectorResult] = []
    series: list[HoldoutScores] = []
    for name, holdout in holdouts.items():
        holdout = load_telemetry(holdout)
        Dh, yh = detector_inputs_and_targets(holdout, utc_offset_minutes=utc_offset_minutes)
        labels = yh["anomaly_flag"]
        scores = {
            "lightgbm_autoencoder": detector.score(Dh)[0],
            "isolation_forest": -forest.score_samples(_imputed(Dh, medians)),
            "rolling_zscore": run_zscore_rule(holdout, ZSCORE_WINDOW),
        }
        days = _machine_days(holdout)
        for detector_name, score in scores.items():
            results.append(_result(name, detector_name, labels, score, thresholds[detector_name], days))
        if name in ceiling:
            z = np.abs(Dh[:, :2] - center) / spread
            candidates = (z[:, 0], z[:, 1], np.fmax(z[:, 0], z[:, 1]))
            best = max(candidates, key=lambda s: _pr_auc(labels, s))
            results.append(_result(name, "two-sided ceiling", labels, best, None, days))
        series.append(
            HoldoutScores(
                name,
                holdout.column("timestamp").cast("int64").to_numpy(),
                holdout.column("machine_id").to_numpy(),
                labels,
                scores,
                thresholds,
            )
        )
    return detector, results, series


def _imputed(D: np.ndarray, medians: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(D), medians, D)


def _threshold(scores: np.ndarray, rate: float) -> float:
    scores = scores[~np.isnan(scores)]
    return float(np.quantile(scores, 1.0 - rate, method="higher"))


def _pr_auc(labels: np.ndarray, score: np.ndarray) -> float:
    if labels.min() == labels.max():
        return float("nan")
    return float(average_precision_score(labels, np.where(np.isnan(score), np.nanmin(score) - 1.0, score)))


def _machine_days(table) -> float:
    """Sum over machines of the time each spans, in days (one sample's interval at least)."""
    ids = table.column("machine_id").to_numpy()
    ts = table.column("timestamp").cast("int64").to_numpy()
    order = np.lexsort((ts, ids))
    ids, ts = ids[order], ts[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)] - 1
    distinct = np.unique(ts)
    step = np.median(np.diff(distinct)) if distinct.size > 1 else 60.0
    return float(np.sum(ts[ends] - ts[starts] + step)) / 86400.0


def _result(data, name, labels, score, threshold, machine_days) -> DetectorResult:
    """The detector's figures; a ``threshold`` of None (the ceiling: a ranking, not a detector) has PR-AUC only."""
    if threshold is None:
        nan = float("nan")
        return DetectorResult(data, name, int(labels.size), int(np.sum(labels == 1)), _pr_auc(labels, score),
                              nan, nan, nan, nan, nan)  # fmt: skip
    flagged = np.nan_to_num(score, nan=-np.inf) >= threshold
    positives = labels == 1
    true_positive = int(np.sum(flagged & positives))
    false_positive = int(np.sum(flagged & ~positives))
    precision = true_positive / max(int(flagged.sum()), 1)
    recall = true_positive / max(int(positives.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return DetectorResult(
        data=data,
        detector=name,
        rows=int(labels.size),
        positives=int(positives.sum()),
        pr_auc=_pr_auc(labels, score),
        threshold=float(threshold),
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
        false_alarms_per_machine_day=false_positive / machine_days if machine_days > 0 else float("nan"),
    )
