"""``iotengine train``: cross-validate the zoo on every task, pick and save a bundle, and write the reports.

Outputs in the output folder::

    bundle/                       the chosen model per task (engine.bundle.format)
    TRAINING.md                   every table below in one page, with links to the CSVs and plots
    model_comparison.csv          every (task, model) with mean and std of every metric, fit seconds
    ceilings.csv                  Bayes ceilings beside the best model and the reference project's figure
    feature_reduction.csv         CV score against the number of features, per task
    unsupervised.csv, .md, .png   the unsupervised detector (bundle/unsupervised/) beside IsolationForest and a
                                  rolling z-score rule on each holdout, and one machine's score over time
    fleet_features.csv            fleet data: raw sensors only vs all 67 features, per task
    holdout.csv                   (with --holdout) the bundle scored on other data, and CV on that data
    model_comparison.png, confusion_matrices.png, feature_importance.png, score_vs_features.png
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from engine.bundle.format import Bundle, TaskModel
from engine.data.loading import load_telemetry
from engine.errors import InvalidInputError
from engine.models.ceilings import task_ceilings
from engine.models.cross_validation import (
    METRICS,
    ModelResult,
    choose_best,
    choose_threshold,
    cross_validate,
    fit_model,
    fold_metrics,
    parallel_map,
    splits,
)
from engine.models.detector_eval import DetectorResult, evaluate_detectors
from engine.models.detector_report import write_detector_report
from engine.models.reduction import ReductionPoint, columns_fold_score, pick_compact, reduction_fold, reduction_points
from engine.models.tasks import INPUT_COLUMNS, STATUS_COLUMN, TASKS, inputs_and_targets
from engine.models.training_report import write_training_reports
from engine.models.zoo import candidates, lightgbm_candidate
from kernels.names import RAW

__all__ = ["TrainingRun", "train"]

Progress = Callable[[str], None]


@dataclass
class TrainingRun:
    """What :func:`train` measured and wrote."""

    out: Path
    bundle: Bundle
    rows: int
    results: dict[str, dict[str, ModelResult]]
    best: dict[str, str]
    thresholds: dict[str, float]
    ceilings: dict[str, dict[str, float]]
    reduction: dict[str, list[ReductionPoint]]
    compact: dict[str, ReductionPoint]
    unsupervised: list[DetectorResult]
    fleet_features: dict[str, tuple[float, float, float, float]]
    holdout: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    reused: dict[str, str] = field(default_factory=dict)  # task -> the task with the same labels it took after
    files: list[Path] = field(default_factory=list)


def train(
    data,
    out: str | Path,
    *,
    folds: int = 3,
    seed: int = 0,
    fleet=None,
    holdout=None,
    unsupervised_holdouts: dict | None = None,
    n_jobs: int | None = None,
    utc_offset_minutes: int = 0,
    progress: Progress = print,
) -> TrainingRun:
    """Train and evaluate every task on ``data`` (labelled telemetry), write the bundle and the reports.

    Parameters
    ----------
    data : table or path
        Labelled telemetry (Kaggle format, or anything :func:`engine.data.loading.load_telemetry` reads).
    out : path
        Output folder.
    folds : int, default=3
    seed : int, default=0
    fleet : table or path, optional
        Fleet-mode telemetry for the raw-vs-all-features comparison.
    holdout : table or path, optional
        Other labelled data (e.g. the real Kaggle sample): the bundle is scored on it and the zoo
        cross-validated on it.
    unsupervised_holdouts : dict of name -> table or path, optional
        Labelled data the unsupervised detector and its peers are evaluated on (default: ``holdout``, if given).
        The detector is fitted on the normal rows of a random 80% of ``data`` and calibrated on the normal rows
        of the other 20% (Kaggle-mode rows are independent draws, so a random split holds out fairly).
    n_jobs : int, optional
        Cores to use (default: all): that many single-threaded fits run side by side.
    utc_offset_minutes : int, default=0
        The local time of the hour and day features (of ``data``, ``fleet`` and ``holdout``); the bundle records
        it, and every scoring path (predict, the stream scorer, the C library, the replay) uses it.
    progress : callable, default=print
        Receives one line per step.
    """
    n_jobs = (os.cpu_count() or 1) if n_jobs is None else n_jobs
    # every input is loaded and checked before any work, so a bad one fails at once and writes nothing
    data = load_telemetry(data)
    holdout = None if holdout is None else load_telemetry(holdout)
    if unsupervised_holdouts is not None:
        unsupervised_holdouts = {name: load_telemetry(table) for name, table in unsupervised_holdouts.items()}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    def timed(name, work):
        started = time.perf_counter()
        value = work()
        seconds[name] = time.perf_counter() - started
        return value

    X, y = timed("features", lambda: inputs_and_targets(data, utc_offset_minutes=utc_offset_minutes))
    for task in TASKS:
        if task.kind != "regression" and np.unique(y[task.name]).size < 2:
            raise InvalidInputError(f"{task.name}: the training data holds only one class, so no model can learn it")
    progress(f"train: {X.shape[0]:,} rows, 68 inputs, {folds}-fold CV of {len(TASKS)} tasks")

    with threadpool_limits(1):  # every fit on one thread, `workers` fits side by side (folds, models, tasks)
        if unsupervised_holdouts is None:
            unsupervised_holdouts = {} if holdout is None else {"holdout": holdout}
        detector = timed(
            "unsupervised detector",
            lambda: _unsupervised(data, unsupervised_holdouts, out, seed, utc_offset_minutes, progress),
        )
        return _train(
            X, y, out, folds, seed, fleet, holdout, max(1, n_jobs), utc_offset_minutes, progress, seconds, timed,
            detector,
        )  # fmt: skip


def _unsupervised(data, holdouts: dict, out: Path, seed: int, utc_offset_minutes: int, progress: Progress):
    """The unsupervised detector of the bundle, evaluated beside its peers; returns (detector, results, files)."""
    calibrate = np.random.default_rng(seed).random(data.num_rows) < 0.2
    detector, results, series = evaluate_detectors(
        data, calibrate, holdouts, ceiling=tuple(holdouts), seed=seed, utc_offset_minutes=utc_offset_minutes
    )
    for r in results:
        progress(f"  unsupervised on {r.data}: {r.detector} PR-AUC {r.pr_auc:.3f}")
    files = write_detector_report(results, series, out) if results else []
    return detector, results, files


def _same_labels(task, y, done) -> str | None:
    """An earlier task of the same kind with identical labels (on Kaggle-mode data downtime_risk is anomaly_flag):
    every fit would repeat it exactly, so its results are reused."""
    for other in done:
        if other.kind == task.kind and np.array_equal(y[other.name], y[task.name]):
            return other.name
    return None


def _train(
    X, y, out, folds, seed, fleet, holdout, workers, utc_offset_minutes, progress, seconds, timed, detector
) -> TrainingRun:
    n_jobs = 1
    results: dict[str, dict[str, ModelResult]] = {}
    best: dict[str, str] = {}
    thresholds: dict[str, float] = {}
    models: dict[str, TaskModel] = {}
    final_lightgbm = {}
    reused: dict[str, str] = {}
    started = time.perf_counter()
    for task in TASKS:
        task_started = time.perf_counter()
        twin = _same_labels(task, y, [t for t in TASKS if t.name in results])
        if twin is not None:
            reused[task.name] = twin
            results[task.name] = {family: replace(result, task=task.name) for family, result in results[twin].items()}
        else:
            results[task.name] = cross_validate(
                task, X, y[task.name], folds=folds, seed=seed, n_jobs=n_jobs, workers=workers
            )
        best[task.name] = choose_best(task, results[task.name])
        chosen = results[task.name][best[task.name]]
        threshold = None
        if task.kind == "binary":
            threshold = choose_threshold(y[task.name], chosen.oof)
            thresholds[task.name] = threshold
        metrics = {m: chosen.mean(m) for m in METRICS[task.kind]}
        models[task.name] = TaskModel(task.name, best[task.name], None, threshold=threshold, metrics=metrics)
        line = ", ".join(f"{name} {result.mean(task.score):.4f}" for name, result in results[task.name].items())
        progress(
            f"  {task.name}: {task.score} {line}; chosen {best[task.name]}"
            + (f", threshold {threshold:.4f}" if threshold is not None else "")
            + (f" (the labels of {twin}: its results)" if twin else f" ({time.perf_counter() - task_started:.0f} s)")
        )
    # The final fits on all rows, every task's side by side: the chosen family, and LightGBM where it was not chosen.
    fits = [
        (task, family)
        for task in TASKS
        if task.name not in reused
        for family in dict.fromkeys((best[task.name], "lightgbm"))
    ]
    fitted = parallel_map(
        lambda job: fit_model(candidates(job[0].kind, seed=seed, n_jobs=n_jobs)[job[1]], X, y[job[0].name]),
        fits,
        workers,
    )
    for (task, family), estimator in zip(fits, fitted, strict=True):
        if family == best[task.name]:
            models[task.name].estimator = estimator
        if family == "lightgbm":
            final_lightgbm[task.name] = estimator
    for task, twin in reused.items():
        models[task].estimator, final_lightgbm[task] = models[twin].estimator, final_lightgbm[twin]
    seconds["cross-validation and final fits"] = time.perf_counter() - started

    ceilings = timed("ceilings", lambda: task_ceilings(X, y))
    progress("  Bayes ceilings: " + ", ".join(f"{t.name} {ceilings[t.name][t.score]:.4f}" for t in TASKS))

    reduction: dict[str, list[ReductionPoint]] = {}
    compact: dict[str, ReductionPoint] = {}
    compact_models: dict[str, TaskModel] = {}
    started = time.perf_counter()
    # Every fold of every task's curve side by side (a task alone has too few folds to fill the cores).
    jobs = [
        (task, fold) for task in TASKS if task.name not in reused for fold in splits(task, y[task.name], folds, seed)
    ]
    done = parallel_map(
        lambda job: reduction_fold(job[0], X, y[job[0].name], job[1], seed=seed, n_jobs=n_jobs), jobs, workers
    )
    for task in TASKS:
        twin = reused.get(task.name)
        if twin is not None:
            reduction[task.name] = reduction[twin]
        else:
            reduction[task.name] = reduction_points([d for (t, _), d in zip(jobs, done, strict=True) if t is task])
        compact[task.name] = point = pick_compact(reduction[task.name])
        columns = np.asarray(point.columns)
        zoo_lightgbm = lightgbm_candidate(task.kind, columns, seed=seed, n_jobs=workers)
        compact_models[task.name] = TaskModel(
            task.name,
            "lightgbm",
            compact_models[twin].estimator if twin else fit_model(zoo_lightgbm, X[:, columns], y[task.name]),
            threshold=thresholds.get(task.name),
            metrics={task.score: point.score_mean},
            columns=point.columns,
        )
        progress(f"  feature reduction {task.name}: compact = {point.label} ({task.score} {point.score_mean:.4f})")
    seconds["feature reduction"] = time.perf_counter() - started

    fleet_features: dict[str, tuple[float, float, float, float]] = {}
    if fleet is not None:
        Xf, yf = timed("features (fleet)", lambda: inputs_and_targets(fleet, utc_offset_minutes=utc_offset_minutes))
        started = time.perf_counter()
        raw_columns = [*range(len(RAW)), STATUS_COLUMN]
        subsets = {"raw": raw_columns, "all": list(range(len(INPUT_COLUMNS)))}
        # A binary task whose fleet rows hold one class has no F1 to report: on a short fleet (the default run's
        # 33 hours per machine) no machine gets within downtime_risk's 6 hours of a failure.
        one_class = {t.name for t in TASKS if t.kind == "binary" and np.unique(yf[t.name]).size < 2}
        jobs = [
            (task, subset, fold)
            for task in TASKS
            if task.name not in one_class
            for subset in subsets
            for fold in splits(task, yf[task.name], folds, seed)
        ]
        done = parallel_map(
            lambda job: columns_fold_score(
                job[0], Xf, yf[job[0].name], subsets[job[1]], job[2], seed=seed, n_jobs=n_jobs
            ),
            jobs,
            workers,
        )
        for task in TASKS:
            if task.name in one_class:
                fleet_features[task.name] = (float("nan"),) * 4
                progress(
                    f"  fleet {task.name}: one class in {len(yf[task.name]):,} rows (no positive labels): "
                    f"{task.score} undefined, not measured"
                )
                continue
            raw, full = (
                [score for (t, s, _), score in zip(jobs, done, strict=True) if t is task and s == subset]
                for subset in subsets
            )
            raw, full = (float(np.mean(raw)), float(np.std(raw))), (float(np.mean(full)), float(np.std(full)))
            fleet_features[task.name] = (*raw, *full)
            progress(f"  fleet {task.name}: {task.score} raw sensors {raw[0]:.4f}, all features {full[0]:.4f}")
        seconds["fleet: raw vs all features"] = time.perf_counter() - started

    bundle = Bundle.write(
        out / "bundle",
        models,
        sets={
            "lightgbm": {
                name: TaskModel(name, "lightgbm", model, threshold=thresholds.get(name))
                for name, model in final_lightgbm.items()
            },
            "compact": compact_models,
        },
        utc_offset_minutes=utc_offset_minutes,
        unsupervised=detector[0],
        extra={
            "training": {
                "rows": int(X.shape[0]),
                "folds": folds,
                "seed": seed,
                "inputs": "the 67 features and machine_status (categorical) for every task; see engine.models.tasks",
            }
        },
    )

    holdout_rows: list[dict] = []
    if holdout is not None:
        holdout_rows = timed(
            "holdout", lambda: _evaluate_holdout(bundle, holdout, folds, seed, n_jobs, workers, progress)
        )

    run = TrainingRun(
        out=out,
        bundle=bundle,
        rows=int(X.shape[0]),
        results=results,
        best=best,
        thresholds=thresholds,
        ceilings=ceilings,
        reduction=reduction,
        compact=compact,
        unsupervised=detector[1],
        fleet_features=fleet_features,
        holdout=holdout_rows,
        seconds=seconds,
        reused=reused,
    )
    run.files = [*detector[2], *write_training_reports(run, X, y, final_lightgbm)]
    return run


def _evaluate_holdout(bundle: Bundle, holdout, folds, seed, n_jobs, workers, progress) -> list[dict]:
    """The bundle's scores on other labelled data, and CV of the zoo on that data alone."""
    Xh, yh = inputs_and_targets(holdout, utc_offset_minutes=bundle.utc_offset_minutes)
    predicted = bundle.predict_inputs(Xh)
    rows = []
    for task in TASKS:
        if task.kind == "multiclass":
            scores = predicted["failure_type_proba"]
            metrics = fold_metrics(task, yh[task.name], scores)
        else:
            metrics = fold_metrics(task, yh[task.name], predicted[task.name], bundle.thresholds.get(task.name, 0.5))
        rows.append(
            {
                "evaluation": "bundle trained on the training data",
                "task": task.name,
                "model": bundle.family(task.name),
                task.score: metrics[task.score],
                **metrics,
            }
        )
        results = cross_validate(task, Xh, yh[task.name], folds=folds, seed=seed, n_jobs=n_jobs, workers=workers)
        for family, result in results.items():
            rows.append(
                {
                    "evaluation": f"{folds}-fold CV on the holdout data",
                    "task": task.name,
                    "model": family,
                    **{m: result.mean(m) for m in METRICS[task.kind]},
                }
            )
        progress(
            f"  holdout {task.name}: bundle {task.score} {metrics[task.score]:.4f}; CV there: "
            + ", ".join(f"{f} {r.mean(task.score):.4f}" for f, r in results.items())
        )
    return rows
