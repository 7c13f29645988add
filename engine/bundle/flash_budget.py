"""A flash budget for a microcontroller: per task, the most accurate model that fits the budget together with the
features, the scoring code, the detector and what they pull from libm and libgcc (``iotengine export-c
--flash-budget BYTES``).

The options of each task:

- the bundle's own model sets (``chosen``, ``compact``, ``lightgbm``), each in every C form its family has (iot,
  tl2cgen; uint8 for LightGBM);
- with training data (``--data``), smaller LightGBM refits (:data:`REFITS`: trees x leaves), fitted on all of it
  and with thresholds from their out-of-fold predictions.

Each option's score is cross-validated on the same folds as the trainer's (3 folds, seed 0): a bundle model's
score is the one its manifest records; the ``lightgbm`` set and the refits are cross-validated on ``--data``
(which must be the training data for the scores to compare). Each option's flash is its model file compiled
for the target (-Os, text + data). The fixed part is measured from a linked firmware image of the smallest
options. The pick minimises the total score given up, each task's loss divided by its tolerance
(:data:`TOLERANCE`), within the budget; then the picked tree is built, its image measured, and if it overshoots
(libgcc's share moves with the models) the allowance shrinks by the overshoot and the pick runs again.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import lightgbm as lgb
import numpy as np

from compile.edge import export_c
from compile.edge_models import model_file, model_source
from compile.edge_resources import measure_target, model_flash
from compile.edge_spec import EdgeModel, EdgeSpec
from compile.errors import CompileError
from engine.bundle.edge import edge_spec
from engine.bundle.format import Bundle
from engine.models.cross_validation import choose_threshold, cross_validate_candidates, fit_model
from engine.models.tasks import TASK_BY_NAME, TASKS, inputs_and_targets
from engine.models.zoo import lightgbm_candidate

__all__ = ["REFITS", "TOLERANCE", "BudgetOption", "BudgetResult", "export_for_budget", "pick_options"]

# The score each task may give up against its full model (the goals of the flash budget).
TOLERANCE = {
    "anomaly_flag": 0.005,
    "maintenance_required": 0.01,
    "downtime_risk": 0.005,
    "failure_type": 0.01,
    "predicted_remaining_life": 0.01,
}
REFITS = ((50, 15), (30, 7), (15, 7), (8, 4), (4, 3))  # LightGBM (trees, leaves)
BUNDLE_SETS = ("chosen", "compact", "lightgbm")
MAX_ROUNDS = 4


@dataclass(frozen=True)
class BudgetOption:
    """One way to ship a task: where the model comes from, its C form, its CV score and its flash."""

    task: str
    source: str
    form: str
    score: float
    flash: int
    model: EdgeModel


@dataclass(frozen=True)
class BudgetResult:
    """The picked option per task, the reference (full) scores, the measured resources of the final build."""

    picked: dict[str, BudgetOption]
    full: dict[str, float]
    options: dict[str, list[BudgetOption]]
    resources: dict
    budget: int

    def rows(self) -> list[dict]:
        """One row per task for the report."""
        out = []
        for task, option in self.picked.items():
            lost = self.full[task] - option.score
            out.append(
                {
                    "task": task,
                    "score": TASK_BY_NAME[task].score,
                    "model": option.source,
                    "form": option.form,
                    "flash_bytes": option.flash,
                    "cv_score": round(option.score, 6),
                    "full_cv_score": round(self.full[task], 6),
                    "given_up": round(lost, 6),
                    "tolerance": TOLERANCE[task],
                    "within_tolerance": bool(lost <= TOLERANCE[task] + 1e-12),
                }
            )
        return out


def _forms(family: str) -> tuple[str, ...]:
    if family == "lightgbm":
        return ("iot", "uint8")
    if family in ("random_forest", "extra_trees", "hist_gradient_boosting"):
        return ("iot", "tl2cgen")
    return ("iot",)  # linear, naive Bayes, mean: one form


def _refit_models(task_name: str, X, y, refits, progress) -> list[tuple[str, float, EdgeModel]]:
    task = TASK_BY_NAME[task_name]
    named = {}
    for trees, leaves in refits:
        candidate = lightgbm_candidate(task.kind, n_jobs=1)  # OpenMP threads spin on a shared machine
        candidate.estimator.set_params(n_estimators=trees, num_leaves=leaves)
        named[f"lightgbm {trees}x{leaves}"] = candidate
    results = cross_validate_candidates(task, named, X, y, workers=2)
    out = []
    for name, candidate in named.items():
        estimator = fit_model(candidate, X, y)
        threshold = choose_threshold(y, results[name].oof) if task.kind == "binary" else None
        classes = tuple(int(c) for c in estimator.classes_) if task.kind == "multiclass" else None
        booster: lgb.Booster = estimator.booster_
        model = EdgeModel(task_name, task.kind, "lightgbm", booster.model_to_string().encode(), None, threshold,
                          classes)  # fmt: skip
        out.append((name, results[name].mean(task.score), model))
    progress(f"  {task_name}: refits " + ", ".join(f"{name} {score:.4f}" for name, score, _ in out))
    return out


def _bundle_models(bundle: Bundle, X, y, progress) -> dict[str, list[tuple[str, float, EdgeModel]]]:
    out: dict[str, list] = {task.name: [] for task in TASKS}
    lightgbm_scores: dict[str, float] = {}
    for set_name in BUNDLE_SETS:
        if set_name != "chosen" and set_name not in bundle.model_sets:
            continue
        spec = edge_spec(bundle, set_name)
        entries = bundle.set_entries(set_name)
        for model in spec.models:
            task = TASK_BY_NAME[model.task]
            score = (entries[model.task].get("metrics") or {}).get(task.score)
            if score is None and set_name == "lightgbm" and X is not None:
                if model.task not in lightgbm_scores:
                    result = cross_validate_candidates(
                        task, {"lightgbm": lightgbm_candidate(task.kind)}, X, y[task.name]
                    )
                    lightgbm_scores[model.task] = result["lightgbm"].mean(task.score)
                score = lightgbm_scores[model.task]
            if score is None:
                progress(f"  {model.task}: the {set_name} set records no CV score; left out")
                continue
            out[model.task].append((set_name, float(score), model))
    return out


def _options(tree_dir: Path, models: dict[str, list], progress) -> dict[str, list[BudgetOption]]:
    jobs = [(task, source, score, model, form) for task, entries in models.items()
            for source, score, model in entries for form in _forms(model.family)]  # fmt: skip

    def flash_of(k: int) -> int:
        _, _, _, model, form = jobs[k]
        code = model_source(model, form)
        out_count = code.n_outputs if model.kind == "multiclass" else 1
        return model_flash(tree_dir, model_file(model, code, out_count), name=f"budget_probe_{k}")

    with ThreadPoolExecutor(2) as pool:  # the compilers run as processes: two at a time on two cores
        flashes = list(pool.map(flash_of, range(len(jobs))))
    options: dict[str, list[BudgetOption]] = {task: [] for task in models}
    for (task, source, score, model, form), flash in zip(jobs, flashes, strict=True):
        options[task].append(BudgetOption(task, source, form, score, flash, model))
    for task in options:
        options[task].sort(key=lambda o: (o.flash, -o.score))
        progress(f"  {task}: " + ", ".join(f"{o.source}/{o.form} {o.flash:,} B {o.score:.4f}" for o in options[task]))
    return options


def _pareto(options: list[BudgetOption]) -> list[BudgetOption]:
    """The options no other beats in both flash and score (sorted by flash)."""
    front, best = [], -np.inf
    for option in sorted(options, key=lambda o: (o.flash, -o.score)):
        if option.score > best:
            front.append(option)
            best = option.score
    return front


def pick_options(options: dict[str, list[BudgetOption]], full: dict[str, float], allowance: int):
    """The options (one per task) of least total loss / tolerance whose flash sums to at most ``allowance``;
    None when even the smallest do not fit."""
    tasks = list(options)
    fronts = [_pareto(options[task]) for task in tasks]
    best, best_key = None, None
    for combination in itertools.product(*fronts):
        flash = sum(o.flash for o in combination)
        if flash > allowance:
            continue
        loss = sum(max(0.0, full[o.task] - o.score) / TOLERANCE[o.task] for o in combination)
        key = (loss, flash)
        if best_key is None or key < best_key:
            best, best_key = combination, key
    return None if best is None else dict(zip(tasks, best, strict=True))


def _spec_of(base: EdgeSpec, picked: dict[str, BudgetOption]) -> EdgeSpec:
    return replace(base, model_set="flash budget", models=tuple(picked[m.task].model for m in base.models))


def export_for_budget(
    bundle: Bundle | str,
    out,
    *,
    budget: int,
    target: str,
    real: str = "float",
    data=None,
    refits: tuple[tuple[int, int], ...] = REFITS,
    progress: Callable[[str], None] = print,
) -> BudgetResult:
    """Export the C tree for ``target`` whose image fits ``budget`` bytes of flash (see the module's docstring);
    writes ``out/FLASH_BUDGET.json`` and the refitted models (``out/models/<task>.txt``) beside the sources."""
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    out = Path(out)
    X = y = None
    if data is not None:  # read before anything is written: a bad file leaves no tree behind
        X, y = inputs_and_targets(data, utc_offset_minutes=bundle.utc_offset_minutes)
    base = edge_spec(bundle, "chosen")
    tree = export_c(base, out, trees="iot", real=real, target=target, progress=lambda _: None)
    models = _bundle_models(bundle, X, y, progress)
    if X is not None:
        for task in TASKS:
            models[task.name].extend(_refit_models(task.name, X, y[task.name], refits, progress))
    full = {}
    for task in TASKS:
        chosen = [score for source, score, _ in models[task.name] if source == "chosen"]
        if not chosen:
            raise CompileError(f"{bundle.path}: the chosen {task.name} model records no CV {task.score}")
        full[task.name] = chosen[0]
    options = _options(tree.directory, models, progress)
    smallest = {task: min(opts, key=lambda o: o.flash) for task, opts in options.items()}
    tree = export_c(_spec_of(base, smallest), out, trees={t: o.form for t, o in smallest.items()}, real=real,
                    target=target, progress=lambda _: None)  # fmt: skip
    fixed = measure_target(tree.directory, target, tree.library_sources)["flash_bytes"] - sum(
        o.flash for o in smallest.values()
    )
    allowance = budget - fixed
    for _ in range(MAX_ROUNDS):
        picked = pick_options(options, full, allowance)
        if picked is None:
            raise CompileError(
                f"a flash budget of {budget:,} bytes cannot hold the library on {target}: the fixed part takes "
                f"{fixed:,} bytes and the smallest models {sum(o.flash for o in smallest.values()):,}"
            )
        tree = export_c(_spec_of(base, picked), out, trees={t: o.form for t, o in picked.items()}, real=real,
                        target=target, progress=lambda _: None)  # fmt: skip
        resources = measure_target(tree.directory, target, tree.library_sources)
        if resources["flash_bytes"] <= budget:
            break
        allowance -= resources["flash_bytes"] - budget
        progress(f"  the image takes {resources['flash_bytes']:,} bytes: picking again within {allowance:,}")
    else:
        raise CompileError(f"no pick fits {budget:,} bytes on {target} after {MAX_ROUNDS} rounds")
    result = BudgetResult(picked, full, options, resources, budget)
    models_dir = out / "models"
    models_dir.mkdir(exist_ok=True)
    for task, option in picked.items():
        if option.source.startswith("lightgbm "):
            (models_dir / f"{task}.txt").write_bytes(option.model.data)
    document = {
        "target": target,
        "real": real,
        "budget_bytes": budget,
        "flash_bytes": resources["flash_bytes"],
        "fixed_bytes": fixed,
        "data": None if data is None else str(data),
        "cv": "3-fold, seed 0 (the trainer's folds)",
        "tasks": result.rows(),
        "options": {
            task: [{"model": o.source, "form": o.form, "flash_bytes": o.flash, "cv_score": o.score} for o in opts]
            for task, opts in options.items()
        },
        "resources": resources,
    }
    (out / "FLASH_BUDGET.json").write_text(json.dumps(document, indent=1) + "\n")
    return result
