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
from engine.models.model_files import save_model
from engine.models.tasks import INPUT_COLUMNS, TASK_BY_NAME
from kernels.names import FEATURE_NAMES

__all__ = ["BUNDLE_FORMAT", "FEATURE_SPEC_VERSION", "TaskModel", "write_bundle"]

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
) -> None:
    """Save ``models`` (the chosen model of each task) and the extra model ``sets`` into the folder ``path``,
    replacing the bundle files already there; the manifest is written last, in one step."""
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
