"""A bundle for streaming a fleet: LightGBM on the 67 features of fleet telemetry, validated forward in time.

The main bundle (``iotengine train``) is fitted to the Kaggle relations, where rows are independent draws and
the only signal is two raw sensors (``anomaly_flag = temperature > 90 or vibration > 80``). A plant is a
fleet: machines with their own baselines that drift before they fail, which is what the per-machine rolling
and z-score features are for. :func:`train_stream_bundle` fits the five tasks on fleet telemetry with the
zoo's LightGBM, on the earlier part of the time span, and picks each binary task's threshold (best F1) on
the later part: consecutive samples of a machine are nearly equal, so a shuffled split would grade the
models on copies of their training rows. The validation scores are written into the bundle's manifest.

Deployment sees machines mid-life: :func:`observation_windows` gives half of the training machines a random
first sample, so the per-machine expanding statistics (``temp_machine_min`` and the like) are learned both from
a machine's start and from an arbitrary point, and a machine first seen mid-degradation is scored as in training.

The bundle's unsupervised detector (engine/models/autoencoder.py) is fitted on the normal samples of the same
earlier part and calibrated on the normal samples of the later part; :func:`prepare_fleet_bundle` evaluates it
beside IsolationForest and the rolling z-score rule on fleet telemetry of other machines
(``unsupervised/unsupervised.md``, with the chart of one machine).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.bundle.edge import build_edge
from engine.bundle.format import Bundle, TaskModel
from engine.data.synthetic import FLEET_INTERVAL_S, generate
from engine.errors import InvalidInputError
from engine.models.cross_validation import choose_threshold, fit_model, fold_metrics, predict_scores
from engine.models.detector_eval import evaluate_detectors
from engine.models.detector_report import write_detector_report
from engine.models.tasks import TASKS, inputs_and_targets
from engine.models.zoo import lightgbm_candidate

__all__ = [
    "HOLDOUT_MACHINES",
    "TRAIN_MACHINES",
    "TRAIN_STEPS",
    "observation_windows",
    "prepare_fleet_bundle",
    "train_stream_bundle",
]

TRAIN_MACHINES = 150
TRAIN_STEPS = 600  # 50 hours at 5 minutes: each machine has a fair chance to degrade and fail
HOLDOUT_MACHINES = 50  # the detector's evaluation: other machines, as many steps


def train_stream_bundle(
    table,
    path,
    *,
    train_share: float = 0.75,
    seed: int = 0,
    unsupervised_holdouts: dict | None = None,
    report: Path | None = None,
    progress: Callable[[str], None] = print,
) -> Bundle:
    """Fit and save the five tasks' LightGBM models and the unsupervised detector on fleet telemetry ``table``
    (with labels); returns the bundle.

    Rows with timestamps in the first ``train_share`` of the time span train; the rest validate (and calibrate
    the detector). The detector and its peers are evaluated on ``unsupervised_holdouts`` (name -> labelled
    table), their report written into the folder ``report`` when given.
    """
    if not 0.0 < train_share < 1.0:
        raise InvalidInputError(f"train_share must be between 0 and 1, not {train_share}")
    X, y = inputs_and_targets(table)
    timestamps = table.column("timestamp").cast("int64").to_numpy()
    cut = timestamps.min() + train_share * (timestamps.max() - timestamps.min())
    train, valid = timestamps <= cut, timestamps > cut
    if not train.any() or not valid.any():
        raise InvalidInputError("the fleet telemetry spans too little time to split into training and validation")
    models, validation = {}, {}
    for task in TASKS:
        started = time.perf_counter()
        estimator = fit_model(lightgbm_candidate(task.kind, seed=seed), X[train], y[task.name][train])
        scores = predict_scores(task, estimator, X[valid])
        threshold = choose_threshold(y[task.name][valid], scores) if task.kind == "binary" else None
        if threshold is not None and not np.isfinite(threshold):
            threshold = 0.5
        metrics = fold_metrics(task, y[task.name][valid], scores, 0.5 if threshold is None else threshold)
        validation[task.name] = {"metric": task.score, "value": float(metrics[task.score])}
        models[task.name] = TaskModel(task.name, "lightgbm", estimator, threshold=threshold)
        progress(
            f"  {task.name}: LightGBM, validation {task.score} {metrics[task.score]:.4f}"
            + ("" if threshold is None else f", threshold {threshold:.3f}")
            + f" ({time.perf_counter() - started:.1f} s)"
        )
    started = time.perf_counter()
    detector, results, series = evaluate_detectors(table, valid, unsupervised_holdouts or {}, seed=seed)
    for r in results:
        progress(f"  unsupervised on {r.data}: {r.detector} PR-AUC {r.pr_auc:.3f}, F1 {r.f1:.3f}")
    progress(f"  unsupervised detector: 5 regressors ({time.perf_counter() - started:.1f} s)")
    if report is not None and results:
        write_detector_report(results, series, report)
    extra = {
        "trained_on": {
            "rows": int(table.num_rows),
            "train_rows": int(train.sum()),
            "validation_rows": int(valid.sum()),
            "split": f"time: first {train_share:.0%} of the span trains, the rest validates",
            "validation": validation,
        }
    }
    extra["unsupervised_evaluation"] = [r.as_row() for r in results]
    return Bundle.write(path, models, extra=extra, unsupervised=detector)


def observation_windows(table, machines: int, *, seed: int = 0, steps: int = TRAIN_STEPS):
    """``steps`` consecutive samples of each machine of a time-major fleet ``table``: half the machines from their
    first sample, the other half from a random later point, as a plant's scorer first sees a machine that was
    already running (mid-life, maybe mid-degradation), so its per-machine statistics start there too."""
    total = table.num_rows // machines
    if total < steps:
        raise InvalidInputError(f"observation windows of {steps} steps need at least that many, not {total}")
    rng = np.random.default_rng([seed, 11])
    start = np.where(rng.random(machines) < 0.5, 0, rng.integers(0, total - steps + 1, machines))
    rows = np.arange(total * machines)
    step, machine = rows // machines, rows % machines
    keep = (step >= start[machine]) & (step < start[machine] + steps)
    return table.take(np.flatnonzero(keep))


def prepare_fleet_bundle(folder, *, seed: int = 0, progress: Callable[[str], None] = print):
    """The fleet bundle of ``iotengine run``'s streaming stage: fleet telemetry of other machines generated,
    :func:`train_stream_bundle` into ``folder/bundle``, its C library built; returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    training = observation_windows(
        generate(
            2 * TRAIN_MACHINES * TRAIN_STEPS,
            machines=TRAIN_MACHINES,
            mode="fleet",
            seed=seed + 3,
            interval_s=FLEET_INTERVAL_S,
        ),
        TRAIN_MACHINES,
        seed=seed,
    )
    holdout = generate(
        HOLDOUT_MACHINES * TRAIN_STEPS, machines=HOLDOUT_MACHINES, mode="fleet", seed=seed + 4,
        interval_s=FLEET_INTERVAL_S,
    )  # fmt: skip
    progress(f"  fleet bundle: LightGBM on {training.num_rows:,} fleet samples ({TRAIN_MACHINES} machines)")
    train_stream_bundle(
        training,
        folder / "bundle",
        seed=seed,
        unsupervised_holdouts={"fleet, other machines": holdout},
        report=folder / "unsupervised",
        progress=progress,
    )
    return build_edge(folder / "bundle", progress=progress)
