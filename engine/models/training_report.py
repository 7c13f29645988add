"""The reports of ``iotengine train`` (see :mod:`engine.models.trainer`): TRAINING.md, its CSV tables and plots."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import confusion_matrix

from engine.models.ceilings import REFERENCE_FIGURES
from engine.models.cross_validation import METRICS
from engine.models.detector_report import detector_markdown
from engine.models.tasks import INPUT_COLUMNS, TASK_BY_NAME, TASKS
from engine.report.figures import pyplot, save_figure
from engine.report.markdown import markdown_table
from engine.report.tables import write_csv

if TYPE_CHECKING:
    from engine.models.trainer import TrainingRun

__all__ = ["write_training_reports"]


def write_training_reports(run: TrainingRun, X, y, final_lightgbm) -> list[Path]:
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
    files.append(write_csv(out / "model_comparison.csv", comparison_rows))

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
    files.append(write_csv(out / "ceilings.csv", ceiling_rows))

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
    files.append(write_csv(out / "feature_reduction.csv", reduction_rows))
    if run.fleet_features:
        files.append(
            write_csv(
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
        files.append(write_csv(out / "holdout.csv", run.holdout))

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
        *markdown_table(
            ["task", "inputs", "why"],
            [[t.name, "67 features + machine_status", t.why_inputs] for t in TASKS],
        ),
        "",
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
        lines += [title, "", *markdown_table(["model", *metrics, "fit s"], rows), ""]
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
    lines += [*markdown_table(["task", *labels], rows), ""]
    lines += ["## Unsupervised detector (LightGBM autoencoder)", ""]
    lines += [
        "Five per-sensor LightGBM regressors (bundle/unsupervised/), fitted on normal rows of 80% of the data, "
        "residual scales and threshold from the normal rows of the other 20%; beside IsolationForest and a "
        "rolling z-score rule with thresholds at the same false-alarm rate. See engine.models.detector_eval; "
        "[unsupervised.csv](unsupervised.csv).",
        "",
    ]
    if run.unsupervised:
        lines += [*detector_markdown(run.unsupervised), ""]
        lines += [f"![score over time]({p.name})" for p in sorted(run.out.glob("unsupervised_*.png"))[:1]] + [""]
    else:
        lines += ["(no labelled holdout to evaluate it on: pass --holdout)", ""]
    if run.fleet_features:
        lines += ["## Fleet data: what the rolling and per-machine features add", ""]
        lines += [
            *markdown_table(
                ["task", "metric", "raw sensors + status", "all 67 features + status", "gain"],
                [
                    [
                        name,
                        TASK_BY_NAME[name].score,
                        f"{v[0]:.4f} ± {v[1]:.4f}",
                        f"{v[2]:.4f} ± {v[3]:.4f}",
                        f"{v[2] - v[0]:+.4f}",
                    ]
                    if np.isfinite(v[0])
                    else [name, TASK_BY_NAME[name].score, "n/a: one class in these rows", "n/a", ""]
                    for name, v in run.fleet_features.items()
                ],
            ),
            "",
            "A binary task is n/a when the fleet rows hold only one class: a short fleet (the default run's 20,000 "
            "rows are 33 hours of 50 machines) has no machine within downtime_risk's 6 hours of a failure. The "
            "fleet bundle (artifacts/stream/bundle, 50 hours of 150 machines, half of them first seen mid-life) "
            "learns and validates it.",
            "",
        ]
    if run.holdout:
        lines += ["## Holdout data", ""]
        rows = []
        for row in run.holdout:
            task = TASK_BY_NAME[row["task"]]
            rows.append([row["evaluation"], row["task"], row["model"], f"{row[task.score]:.4f}"])
        lines += [*markdown_table(["evaluation", "task", "model", "score (F1 / macro F1 / R^2)"], rows), ""]
    lines += ["## Time", ""]
    lines += [*markdown_table(["step", "seconds"], [[k, f"{v:.1f}"] for k, v in run.seconds.items()]), ""]
    path = run.out / "TRAINING.md"
    path.write_text("\n".join(lines))
    return path


def _plots(run: TrainingRun, X, y, final_lightgbm) -> list[Path]:
    out = run.out
    files = []
    fig, axes = pyplot().subplots(1, len(TASKS), figsize=(4 * len(TASKS), 4), sharey=False)
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
    files.append(save_figure(fig, out / "model_comparison.png"))

    fig, axes = pyplot().subplots(1, len(TASKS), figsize=(4 * len(TASKS), 4))
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
    files.append(save_figure(fig, out / "confusion_matrices.png"))

    fig, axes = pyplot().subplots(1, len(TASKS), figsize=(4 * len(TASKS), 5))
    for ax, task in zip(axes, TASKS, strict=True):
        gain = final_lightgbm[task.name].booster_.feature_importance(importance_type="gain")
        top = np.argsort(-gain)[:15][::-1]
        ax.barh([INPUT_COLUMNS[j] for j in top], gain[top] / max(gain.sum(), 1e-300))
        ax.set_title(f"{task.name}\n(LightGBM gain share)", fontsize=9)
        ax.tick_params(labelsize=7)
    files.append(save_figure(fig, out / "feature_importance.png"))

    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    for name, points in run.reduction.items():
        ranked = [p for p in points if p.label.startswith(("top", "all"))]
        ax.plot([p.k for p in ranked], [p.score_mean for p in ranked], marker="o", label=name)
        two = points[-1]
        ax.scatter([2], [two.score_mean], marker="x", color=ax.lines[-1].get_color())
    ax.set_xscale("log")
    ax.set_xlabel("features (top k by LightGBM gain; x = temperature + vibration only)")
    ax.set_ylabel("CV score (F1, macro F1 or R^2)")
    ax.legend(fontsize=7)
    files.append(save_figure(fig, out / "score_vs_features.png"))
    return files
