"""Writing a bundle: each fitted model saved in its own format (no pickle), the chosen scikit-learn models'
ONNX exports, and ``bundle.json`` with every file's sha256 (see :mod:`engine.bundle.format`)."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from engine.bundle.files import write_file, write_manifest
from engine.bundle.sklearn_export import sklearn_onnx_exports
from engine.features.inputs import offset_seconds
from engine.models.autoencoder import DETECTOR_COLUMNS, SCORE_NAME, LightGBMAutoencoder
from engine.models.model_files import save_model
from engine.models.tasks import INPUT_COLUMNS, TASK_BY_NAME
from kernels.names import FEATURE_NAMES, RAW

__all__ = ["BUNDLE_FORMAT", "FEATURE_SPEC_VERSION", "UNSUPERVISED_SET", "TaskModel", "write_bundle"]

# The model set of the unsupervised detector's five regressors, one per sensor (named by its sensor); the
# manifest's ``unsupervised`` section holds what turns their predictions into residuals and a score.
UNSUPERVISED_SET = "unsupervised"

BUNDLE_FORMAT = "iotengine.bundle/1"
FEATURE_SPEC_VERSION = "features.md/67"


@dataclass
class TaskModel:
    """A fitted model to put in a bundle, with what the bundle records about it.

    ``columns`` are indices into :data:`engine.models.tasks.INPUT_COLUMNS` (default: all 68).
    """

    task: str
    family: str
    estimator: object
    threshold: float | None = None
    metrics: dict = field(default_factory=dict)
    columns: tuple[int, ...] | None = None


def _library_versions() -> dict[str, str]:
    import lightgbm
    import sklearn
    import treelite

    from engine import __version__

    return {
        "iotengine": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "lightgbm": lightgbm.__version__,
        "scikit-learn": sklearn.__version__,
        "treelite": treelite.__version__,
    }


def write_bundle(
    path: Path,
    models: dict[str, TaskModel],
    *,
    sets: dict[str, dict[str, TaskModel]],
    utc_offset_minutes: int,
    extra: dict,
    unsupervised: LightGBMAutoencoder | None = None,
) -> None:
    """Save ``models`` (the chosen model of each task), the extra model ``sets`` and the ``unsupervised`` detector
    (fitted and calibrated) into the folder ``path``, replacing the bundle files already there; the manifest is
    written last, in one step."""
    (path / "models").mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    tasks = {}
    for name, model in models.items():
        task = TASK_BY_NAME[name]
        saved = save_model(model.estimator, model.family, task.kind)
        relative = f"models/{name}.{model.family}{saved.extension}"
        files[relative] = write_file(path / relative, saved.data)
        tasks[name] = _task_entry(task, model, relative)
    set_entries: dict[str, dict] = {}
    for set_name, set_models in sets.items():
        set_entries[set_name] = {}
        for name, model in set_models.items():
            task = TASK_BY_NAME[name]
            saved = save_model(model.estimator, model.family, task.kind)
            relative = f"{set_name}/{name}{saved.extension}"
            files[relative] = write_file(path / relative, saved.data)
            set_entries[set_name][name] = _task_entry(task, model, relative)
    unsupervised_section = None
    if unsupervised is not None:
        set_entries[UNSUPERVISED_SET] = {}
        for sensor, booster, columns in zip(RAW, unsupervised.boosters_, unsupervised.columns_, strict=True):
            relative = f"{UNSUPERVISED_SET}/{sensor}.txt"
            files[relative] = write_file(path / relative, booster.model_to_string().encode())
            set_entries[UNSUPERVISED_SET][sensor] = {
                "kind": "regression",
                "family": "lightgbm",
                "file": relative,
                "classes": [],
                "threshold": None,
                "metrics": {},
                "columns": [int(c) for c in columns],
            }
        unsupervised_section = _unsupervised_section(unsupervised)
    onnx_files, onnx_section = sklearn_onnx_exports(models)
    for relative, data in onnx_files.items():
        files[relative] = write_file(path / relative, data)
    manifest = {
        "format": BUNDLE_FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "feature_spec": {"version": FEATURE_SPEC_VERSION, "names": list(FEATURE_NAMES)},
        "input_columns": list(INPUT_COLUMNS),
        "utc_offset_minutes": offset_seconds(utc_offset_minutes) // 60,  # checked: within one day
        "tasks": tasks,
        "model_sets": set_entries,
        "sklearn_onnx": onnx_section,
        "unsupervised": unsupervised_section,
        "libraries": _library_versions(),
        **extra,
        "files": files,
    }
    write_manifest(path, manifest)


def _task_entry(task, model: TaskModel, relative: str) -> dict:
    classes = getattr(model.estimator, "classes_", None)
    if classes is None and hasattr(model.estimator, "named_steps"):
        classes = getattr(model.estimator.named_steps["model"], "classes_", None)
    entry = {
        "kind": task.kind,
        "family": model.family,
        "file": relative,
        "classes": list(task.classes),
        "threshold": model.threshold,
        "metrics": model.metrics,
        "columns": None if model.columns is None else [int(c) for c in model.columns],
    }
    if task.kind == "multiclass":
        entry["class_indices"] = [int(c) for c in classes]
    return entry


def _unsupervised_section(detector: LightGBMAutoencoder) -> dict:
    return {
        "output": SCORE_NAME,
        "sensors": list(RAW),
        "inputs": list(DETECTOR_COLUMNS),
        "center": [float(v) for v in detector.center_],
        "scale": [float(v) for v in detector.scale_],
        "threshold": float(detector.threshold_),
        "false_alarm_rate": float(detector.false_alarm_rate_),
        "robust_loss": bool(detector.robust_),
        "score": "max over the sensors present of |(x - predicted - center) / scale|",
        "settings": {
            "n_estimators": detector.n_estimators,
            "num_leaves": detector.num_leaves,
            "learning_rate": detector.learning_rate,
            "min_child_samples": detector.min_child_samples,
        },
    }
