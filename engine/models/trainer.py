"""``iotengine train``: cross-validate the zoo on every task, pick and save a bundle, and write the reports.

Outputs in the output folder::

    bundle/                       the chosen model per task (engine.bundle.format)
    TRAINING.md                   every table below in one page, with links to the CSVs and plots
    model_comparison.csv          every (task, model) with mean and std of every metric, fit seconds
    ceilings.csv                  Bayes ceilings beside the best model and the reference project's figure
    feature_reduction.csv         CV score against the number of features, per task
    autoencoder.csv               the LightGBM autoencoder as an anomaly detector, per data set
    fleet_features.csv            fleet data: raw sensors only vs all 67 features, per task
    holdout.csv                   (with --holdout) the bundle scored on other data, and CV on that data
    model_comparison.png, confusion_matrices.png, feature_importance.png, score_vs_features.png
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import confusion_matrix
from threadpoolctl import threadpool_limits

from engine.bundle.format import Bundle, TaskModel
from engine.errors import InvalidInputError
from engine.models.autoencoder import AutoencoderEvaluation, evaluate_autoencoder
from engine.models.ceilings import REFERENCE_FIGURES, task_ceilings
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
from engine.models.reduction import ReductionPoint, columns_fold_score, pick_compact, reduction_fold, reduction_points
from engine.models.tasks import INPUT_COLUMNS, STATUS_COLUMN, TASK_BY_NAME, TASKS, inputs_and_targets
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
    autoencoder: list[AutoencoderEvaluation]
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
    n_jobs: int | None = None,
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
        Fleet-mode telemetry for the autoencoder and the raw-vs-all-features comparison.
    holdout : table or path, optional
        Other labelled data (e.g. the real Kaggle sample): the bundle is scored on it and the zoo
        cross-validated on it.
    n_jobs : int, optional
        Cores to use (default: all): that many single-threaded fits run side by side.
    progress : callable, default=print
        Receives one line per step.
    """
    n_jobs = (os.cpu_count() or 1) if n_jobs is None else n_jobs
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    def timed(name, work):
        started = time.perf_counter()
        value = work()
        seconds[name] = time.perf_counter() - started
        return value

    X, y = timed("features", lambda: inputs_and_targets(data))
    for task in TASKS:
        if task.kind != "regression" and np.unique(y[task.name]).size < 2:
            raise InvalidInputError(f"{task.name}: the training data holds only one class, so no model can learn it")
    progress(f"train: {X.shape[0]:,} rows, 68 inputs, {folds}-fold CV of {len(TASKS)} tasks")

    with threadpool_limits(1):  # every fit on one thread, `workers` fits side by side (folds, models, tasks)
        return _train(X, y, out, folds, seed, fleet, holdout, max(1, n_jobs), progress, seconds, timed)


def _same_labels(task, y, done) -> str | None:
    """An earlier task of the same kind with identical labels (on Kaggle-mode data downtime_risk is anomaly_flag):
    every fit would repeat it exactly, so its results are reused."""
    for other in done:
        if other.kind == task.kind and np.array_equal(y[other.name], y[task.name]):
            return other.name
    return None


def _train(X, y, out, folds, seed, fleet, holdout, workers, progress, seconds, timed) -> TrainingRun:
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

    autoencoder = [
        timed(
            "autoencoder (training data)",
            lambda: evaluate_autoencoder(X, y["anomaly_flag"], data="training data", seed=seed),
        )
    ]
    fleet_features: dict[str, tuple[float, float, float, float]] = {}
    if fleet is not None:
        Xf, yf = timed("features (fleet)", lambda: inputs_and_targets(fleet))
        autoencoder.append(
            timed("autoencoder (fleet)", lambda: evaluate_autoencoder(Xf, yf["anomaly_flag"], data="fleet", seed=seed))
        )
        started = time.perf_counter()
        raw_columns = [*range(len(RAW)), STATUS_COLUMN]
        subsets = {"raw": raw_columns, "all": list(range(len(INPUT_COLUMNS)))}
        jobs = [
            (task, subset, fold)
            for task in TASKS
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
            raw, full = (
                [score for (t, s, _), score in zip(jobs, done, strict=True) if t is task and s == subset]
                for subset in subsets
            )
            raw, full = (float(np.mean(raw)), float(np.std(raw))), (float(np.mean(full)), float(np.std(full)))
            fleet_features[task.name] = (*raw, *full)
            progress(f"  fleet {task.name}: {task.score} raw sensors {raw[0]:.4f}, all features {full[0]:.4f}")
        seconds["fleet: raw vs all features"] = time.perf_counter() - started
    for evaluation in autoencoder:
        progress(f"  autoencoder on {evaluation.data}: PR-AUC {evaluation.pr_auc:.3f}, F1 {evaluation.f1:.3f}")

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
        autoencoder=autoencoder,
        fleet_features=fleet_features,
        holdout=holdout_rows,
        seconds=seconds,
        reused=reused,
    )
    run.files = _write_reports(run, X, y, final_lightgbm)
    return run


def _evaluate_holdout(bundle: Bundle, holdout, folds, seed, n_jobs, workers, progress) -> list[dict]:
    """The bundle's scores on other labelled data, and CV of the zoo on that data alone."""
    Xh, yh = inputs_and_targets(holdout)
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
                "model": bundle.manifest["tasks"][task.name]["family"],
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


# --- reports


def _write_csv(path: Path, rows: list[dict]) -> Path:
    fields: list[str] = []
    for row in rows:
        fields += [key for key in row if key not in fields]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return path


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]


def _write_reports(run: TrainingRun, X, y, final_lightgbm) -> list[Path]:
    out = run.out
    files = []
    comparison_rows = []
    for task in TASKS:
        for family, result in run.results[task.name].items():
            row = {"task": task.name, "model": family, "chosen": family == run.best[task.name]}
            for metric in METRICS[task.kind]:
                row[f"{metric}_mean"] = result.mean(metric)
                row[f"{metric}_std"] = result.std(metric)
            row["fit_seconds"] = result.mean_fit_seconds
            comparison_rows.append(row)
    files.append(_write_csv(out / "model_comparison.csv", comparison_rows))

    ceiling_rows = []
    for task in TASKS:
        metric = task.score
        reference_metric, reference = REFERENCE_FIGURES[task.name]
        chosen = run.results[task.name][run.best[task.name]]
        ceiling_rows.append(
            {
                "task": task.name,
                "metric": metric,
                "ceiling": run.ceilings[task.name][metric],
                "best_model": run.best[task.name],
                "best_model_score": chosen.mean(metric),
                "reference_metric": reference_metric,
                "reference_figure": reference,
                "ceiling_of_reference_metric": run.ceilings[task.name].get(reference_metric, float("nan")),
                "reference_above_ceiling": reference > run.ceilings[task.name].get(reference_metric, np.inf) + 0.005,
            }
        )
    files.append(_write_csv(out / "ceilings.csv", ceiling_rows))

    reduction_rows = [
        {
            "task": name,
            "features": p.label,
            "k": p.k,
            "score_mean": p.score_mean,
            "score_std": p.score_std,
            "compact": p == run.compact[name],
        }
        for name, points in run.reduction.items()
        for p in points
    ]
    files.append(_write_csv(out / "feature_reduction.csv", reduction_rows))
    files.append(_write_csv(out / "autoencoder.csv", [asdict(e) for e in run.autoencoder]))
    if run.fleet_features:
        files.append(
            _write_csv(
                out / "fleet_features.csv",
                [
                    {
                        "task": name,
                        "raw_mean": v[0],
                        "raw_std": v[1],
                        "all_features_mean": v[2],
                        "all_features_std": v[3],
                        "gain": v[2] - v[0],
                    }
                    for name, v in run.fleet_features.items()
                ],
            )
        )
    if run.holdout:
        files.append(_write_csv(out / "holdout.csv", run.holdout))

    files += _plots(run, X, y, final_lightgbm)
    files.append(_write_markdown(run, files))
    return files


def _write_markdown(run: TrainingRun, files: list[Path]) -> Path:
    lines = [
        "# Training report",
        "",
        f"{run.rows:,} rows, {len(next(iter(run.results.values()))['lightgbm'].folds)}-fold cross-validation. "
        "Inputs of every task: the 67 features and machine_status (categorical). Scores are means over the "
        "held-out folds (std after ±); binary tasks at the threshold 0.5. Time is the mean fit time of one fold.",
        "",
        "Files: " + ", ".join(f"[{p.name}]({p.name})" for p in files),
        "",
        *(
            f"{task} has exactly the labels of {twin} on this data, so every fit would repeat {twin}'s: its "
            "cross-validation, feature reduction and models are those of "
            f"{twin}.\n"
            for task, twin in run.reused.items()
        ),
        "## Inputs",
        "",
        *_markdown_table(
            ["task", "inputs", "why"],
            [[t.name, "67 features + machine_status", t.why_inputs] for t in TASKS],
        ),
        "## Models and ceilings",
        "",
        "The Bayes ceiling is the best score any model can reach given how the labels relate to the inputs "
        "(engine.models.ceilings, computed on this data); the reference project's published figure is beside it. "
        "A figure above the ceiling means the label leaked into the inputs.",
        "",
        "![model comparison](model_comparison.png)",
        "",
    ]
    for task in TASKS:
        metrics = METRICS[task.kind]
        rows = []
        for family, result in sorted(run.results[task.name].items(), key=lambda kv: -kv[1].mean(task.score)):
            mark = " (chosen)" if family == run.best[task.name] else ""
            rows.append(
                [f"{family}{mark}"]
                + [f"{result.mean(m):.4f} ± {result.std(m):.4f}" for m in metrics]
                + [f"{result.mean_fit_seconds:.2f}"]
            )
        ceiling = run.ceilings[task.name]
        rows.append(["**Bayes ceiling**"] + [f"{ceiling[m]:.4f}" if m in ceiling else "" for m in metrics] + [""])
        reference_metric, reference = REFERENCE_FIGURES[task.name]
        rows.append(
            ["reference project"] + [f"{reference:.4f}" if m == reference_metric else "" for m in metrics] + [""]
        )
        title = f"### {task.name}"
        if task.name in run.thresholds:
            title += f" (decision threshold {run.thresholds[task.name]:.4f}, chosen on out-of-fold probabilities)"
        lines += [title, "", *_markdown_table(["model", *metrics, "fit s"], rows)]
    lines += ["![confusion matrices](confusion_matrices.png)", "", "## Feature reduction", ""]
    lines += [
        "LightGBM on the top-k features by gain (ranked within each training fold), machine_status always kept. "
        "Compact = fewest features within 0.005 of all features; its model is in bundle/compact/.",
        "",
        "![score vs features](score_vs_features.png) ![feature importance](feature_importance.png)",
        "",
    ]
    labels = [p.label for p in next(iter(run.reduction.values()))]
    rows = [
        [name, *(f"{p.score_mean:.4f}" + (" **compact**" if p == run.compact[name] else "") for p in points)]
        for name, points in run.reduction.items()
    ]
    lines += _markdown_table(["task", *labels], rows)
    lines += ["## LightGBM autoencoder (unsupervised anomaly detection)", ""]
    lines += _markdown_table(
        ["data", "test rows", "anomaly rate", "PR-AUC", "F1", "precision", "recall", "threshold"],
        [
            [
                e.data,
                f"{e.rows_test:,}",
                f"{e.positive_rate:.3f}",
                f"{e.pr_auc:.3f}",
                f"{e.f1:.3f}",
                f"{e.precision:.3f}",
                f"{e.recall:.3f}",
                f"{e.threshold:.3f}",
            ]
            for e in run.autoencoder
        ],
    )
    if run.fleet_features:
        lines += ["## Fleet data: what the rolling and per-machine features add", ""]
        lines += _markdown_table(
            ["task", "metric", "raw sensors + status", "all 67 features + status", "gain"],
            [
                [
                    name,
                    TASK_BY_NAME[name].score,
                    f"{v[0]:.4f} ± {v[1]:.4f}",
                    f"{v[2]:.4f} ± {v[3]:.4f}",
                    f"{v[2] - v[0]:+.4f}",
                ]
                for name, v in run.fleet_features.items()
            ],
        )
    if run.holdout:
        lines += ["## Holdout data", ""]
        rows = []
        for row in run.holdout:
            task = TASK_BY_NAME[row["task"]]
            rows.append([row["evaluation"], row["task"], row["model"], f"{row[task.score]:.4f}"])
        lines += _markdown_table(["evaluation", "task", "model", "score (F1 / macro F1 / R^2)"], rows)
    lines += ["## Time", ""]
    lines += _markdown_table(["step", "seconds"], [[k, f"{v:.1f}"] for k, v in run.seconds.items()])
    path = run.out / "TRAINING.md"
    path.write_text("\n".join(lines))
    return path


def _plots(run: TrainingRun, X, y, final_lightgbm) -> list[Path]:
    out = run.out
    files = []
    fig, axes = plt.subplots(1, len(TASKS), figsize=(4 * len(TASKS), 4), sharey=False)
    for ax, task in zip(axes, TASKS, strict=True):
        metric = task.score
        names = list(run.results[task.name])
        values = [run.results[task.name][n].mean(metric) for n in names]
        errors = [run.results[task.name][n].std(metric) for n in names]
        colors = ["tab:green" if n == run.best[task.name] else "tab:blue" for n in names]
        ax.barh(names, values, xerr=errors, color=colors)
        ax.axvline(run.ceilings[task.name][metric], color="black", linestyle="--", label="Bayes ceiling")
        reference_metric, reference = REFERENCE_FIGURES[task.name]
        if reference_metric == metric:
            ax.axvline(reference, color="tab:red", linestyle=":", label="reference project")
        ax.set_title(f"{task.name}\n({metric})", fontsize=9)
        ax.set_xlim(min(0.0, min(values)), 1.0)
        ax.tick_params(labelsize=8)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    files.append(_save(fig, out / "model_comparison.png"))

    fig, axes = plt.subplots(1, len(TASKS), figsize=(4 * len(TASKS), 4))
    for ax, task in zip(axes, TASKS, strict=True):
        result = run.results[task.name][run.best[task.name]]
        if task.kind == "regression":
            ax.scatter(y[task.name], result.oof, s=2, alpha=0.3)
            ax.set_xlabel("true hours")
            ax.set_ylabel("predicted (out of fold)")
        else:
            predicted = (
                (result.oof >= run.thresholds[task.name]).astype(int)
                if task.kind == "binary"
                else result.oof.argmax(axis=1)
            )
            labels = np.arange(len(task.classes))
            matrix = confusion_matrix(y[task.name], predicted, labels=labels)
            ax.imshow(matrix, cmap="Blues")
            for (i, j), count in np.ndenumerate(matrix):
                ax.text(j, i, f"{count:,}", ha="center", va="center", fontsize=7)
            short = [c[:10] for c in task.classes]
            ax.set_xticks(labels, short, rotation=45, fontsize=7)
            ax.set_yticks(labels, short, fontsize=7)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
        ax.set_title(f"{task.name}: {run.best[task.name]}", fontsize=9)
    fig.tight_layout()
    files.append(_save(fig, out / "confusion_matrices.png"))

    fig, axes = plt.subplots(1, len(TASKS), figsize=(4 * len(TASKS), 5))
    for ax, task in zip(axes, TASKS, strict=True):
        gain = final_lightgbm[task.name].booster_.feature_importance(importance_type="gain")
        top = np.argsort(-gain)[:15][::-1]
        ax.barh([INPUT_COLUMNS[j] for j in top], gain[top] / max(gain.sum(), 1e-300))
        ax.set_title(f"{task.name}\n(LightGBM gain share)", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    files.append(_save(fig, out / "feature_importance.png"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in run.reduction.items():
        ranked = [p for p in points if p.label.startswith(("top", "all"))]
        ax.plot([p.k for p in ranked], [p.score_mean for p in ranked], marker="o", label=name)
        two = points[-1]
        ax.scatter([2], [two.score_mean], marker="x", color=ax.lines[-1].get_color())
    ax.set_xscale("log")
    ax.set_xlabel("features (top k by LightGBM gain; x = temperature + vibration only)")
    ax.set_ylabel("CV score (F1, macro F1 or R^2)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    files.append(_save(fig, out / "score_vs_features.png"))
    return files


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
