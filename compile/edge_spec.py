"""What :func:`compile.edge.export_c` needs to know of a bundle, and nothing more: the models as bytes, with the
task, kind and family of each, and the few facts of the bundle that the C header states.

compile/ never reads a bundle itself: :func:`engine.bundle.edge.edge_spec` builds this from one.
"""

from __future__ import annotations

from dataclasses import dataclass

from compile.errors import CompileError
from kernels.names import FAILURE_TYPES, N_FEATURES, SENSORS

__all__ = ["DETECTOR_TASKS", "EDGE_TASKS", "TASK_KINDS", "EdgeDetector", "EdgeModel", "EdgeSpec"]

# The five models of the edge library, in the order of iot_score (and of iotengine.h's iot_scores).
EDGE_TASKS = ("anomaly_flag", "maintenance_required", "downtime_risk", "failure_type", "predicted_remaining_life")
# The unsupervised detector's regressors, one per sensor in sensor order; their columns index the 78 detector
# inputs (the 68 model inputs, then each sensor's history mean and std: engine/models/autoencoder.py).
DETECTOR_TASKS = tuple(f"unsupervised_{sensor}" for sensor in SENSORS)
TASK_KINDS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class EdgeModel:
    """One task's model: its file's bytes and how to read them.

    ``columns`` are the model's inputs among the 68 (None: all); ``class_indices`` (multiclass only) give the
    failure type of each model output; ``threshold`` is the decision threshold of a binary task.
    """

    task: str
    kind: str
    family: str
    data: bytes
    columns: tuple[int, ...] | None = None
    threshold: float | None = None
    class_indices: tuple[int, ...] | None = None

    def __post_init__(self):
        if self.task not in EDGE_TASKS and self.task not in DETECTOR_TASKS:
            raise CompileError(f"the edge library has no task {self.task!r}; its tasks are {', '.join(EDGE_TASKS)}")
        if self.kind not in TASK_KINDS:
            raise CompileError(f"{self.task}: kind {self.kind!r} is not one of {', '.join(TASK_KINDS)}")


@dataclass(frozen=True)
class EdgeDetector:
    """The unsupervised detector: its five regressors (tasks :data:`DETECTOR_TASKS`, in order), the center and
    scale of each sensor's residual, and the alarm threshold of the score."""

    models: tuple[EdgeModel, ...]
    center: tuple[float, ...]
    scale: tuple[float, ...]
    threshold: float

    def __post_init__(self):
        if tuple(model.task for model in self.models) != DETECTOR_TASKS:
            raise CompileError(f"the detector's models must be {', '.join(DETECTOR_TASKS)}, in that order")
        if len(self.center) != len(SENSORS) or len(self.scale) != len(SENSORS):
            raise CompileError(f"the detector needs {len(SENSORS)} centers and scales")
        if not all(scale > 0 for scale in self.scale):
            raise CompileError(f"the detector's scales must be positive, not {self.scale}")
        for model in self.models:
            if model.kind != "regression" or model.columns is None:
                raise CompileError(f"{model.task}: a detector model is a regressor with its columns")


@dataclass(frozen=True)
class EdgeSpec:
    """A bundle's model set as the edge exporter sees it.

    ``name``, ``created``, ``source`` and ``feature_spec`` only describe the bundle in the header and the
    manifest; ``utc_offset_minutes`` (the offset the models were trained with) becomes IOT_UTC_OFFSET_MINUTES;
    ``detector`` is the unsupervised detector (None: the library's unsupervised outputs are NaN).
    """

    name: str
    source: str
    created: str
    feature_spec: str
    model_set: str
    models: tuple[EdgeModel, ...]
    utc_offset_minutes: int = 0
    status_column: int = N_FEATURES
    failure_types: tuple[str, ...] = FAILURE_TYPES
    detector: EdgeDetector | None = None

    def __post_init__(self):
        tasks = [model.task for model in self.models]
        if tasks != list(EDGE_TASKS):
            missing = [t for t in EDGE_TASKS if t not in tasks]
            raise CompileError(
                f"{self.source}: the {self.model_set} model set has no model for {', '.join(missing)}"
                if missing
                else f"{self.source}: the edge models must come in the order {', '.join(EDGE_TASKS)}"
            )
