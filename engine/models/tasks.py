"""The five prediction tasks: what each predicts, from which inputs, and how its target is read from a table.

Every task reads the same 68 inputs: the 67 features of ../shared/spec/features.md and ``machine_status``
(0 idle, 1 running, 2 maintenance) as a categorical context column. Why each task needs them:

- ``anomaly_flag``, ``downtime_risk``: the sensors and how far they sit from the machine's own history. In
  kaggle-mode data both are a rule on two raw sensors (temperature > 90 or vibration > 80); in fleet data they
  are deviations from a machine's baseline, which only the rolling and per-machine features show. The status
  tells the model which load level to expect (a stopped machine runs cooler), so it is kept as context.
- ``maintenance_required``: status 2 (maintenance) implies it in both modes; the rest comes from the sensors.
- ``failure_type``: in kaggle-mode data the failure type is only ever set under status 2, so the status is the
  main input; in fleet data the drift of each sensor tells the types apart.
- ``predicted_remaining_life``: anomalous sensors mean short remaining life; in fleet data the status marks
  repairs (life 0) and the drift features measure how far a degradation has gone.

No input is derived from a label: the features read only the sensors, the timestamp and the machine id
(``tests/models/test_training.py`` shuffles each label column and checks the inputs do not change).

Examples
--------
>>> [task.name for task in TASKS]
['anomaly_flag', 'maintenance_required', 'downtime_risk', 'failure_type', 'predicted_remaining_life']
>>> TASK_BY_NAME["failure_type"].kind, len(INPUT_COLUMNS), INPUT_COLUMNS[STATUS_COLUMN]
('multiclass', 68, 'machine_status')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from engine.data.loading import load_telemetry
from engine.data.schema import FAILURE_TYPES
from engine.errors import InvalidInputError, TelemetryError
from engine.features.batch import features_of_valid_table
from kernels.names import FEATURE_NAMES

__all__ = [
    "DOWNTIME_POSITIVE_AT",
    "INPUT_COLUMNS",
    "STATUS_COLUMN",
    "TASKS",
    "TASK_BY_NAME",
    "Task",
    "design_matrix",
    "inputs_and_targets",
    "targets",
]

INPUT_COLUMNS: tuple[str, ...] = (*FEATURE_NAMES, "machine_status")
STATUS_COLUMN = len(FEATURE_NAMES)  # index of machine_status among INPUT_COLUMNS
DOWNTIME_POSITIVE_AT = 0.5  # downtime_risk >= 0.5 is a positive


@dataclass(frozen=True)
class Task:
    """One prediction task.

    Attributes
    ----------
    name : str
        The label column it predicts (also the task's name in bundles and reports).
    kind : {"binary", "multiclass", "regression"}
    score : str
        The metric that ranks models for this task (``f1``, ``f1_macro`` or ``r2``).
    classes : tuple of str
        Class names, in the order of predicted probabilities (empty for regression).
    """

    name: str
    kind: str
    score: str
    classes: tuple[str, ...] = ()
    why_inputs: str = ""

    def target(self, table: pa.Table) -> np.ndarray:
        """The target of every row: 0/1 (int64), a class index into :attr:`classes` (int64), or hours (float64)."""
        if self.name not in table.column_names:
            raise TelemetryError(
                f"column {self.name!r} is needed to train {self.name!r} but the table has no such column"
            )
        column = table.column(self.name)
        if self.name == "failure_type":
            # load_telemetry stores failure_type as a dictionary in FAILURE_TYPES order, so the codes are indices.
            return np.concatenate([chunk.indices.to_numpy() for chunk in column.chunks]).astype(np.int64)
        values = column.to_numpy()
        if self.name == "downtime_risk":
            return (values >= DOWNTIME_POSITIVE_AT).astype(np.int64)
        if self.kind == "regression":
            return values.astype(np.float64)
        return values.astype(np.int64)


TASKS: tuple[Task, ...] = (
    Task(
        "anomaly_flag",
        "binary",
        "f1",
        ("normal", "anomaly"),
        "raw sensors (kaggle: a rule on temperature and vibration); rolling and per-machine deviations (fleet: "
        "anomalies are departures from a machine's own baseline); status as the expected load level",
    ),
    Task(
        "maintenance_required",
        "binary",
        "f1",
        ("no", "yes"),
        "status (maintenance implies it in both modes); sensors and deviations for the anomaly and wear part",
    ),
    Task(
        "downtime_risk",
        "binary",
        "f1",
        ("low", "high"),
        "as anomaly_flag in kaggle data (risk = anomaly); drift of the rolling features before failures in fleet",
    ),
    Task(
        "failure_type",
        "multiclass",
        "f1_macro",
        FAILURE_TYPES,
        "status (kaggle: a failure type is only set under maintenance); which sensors drift (fleet)",
    ),
    Task(
        "predicted_remaining_life",
        "regression",
        "r2",
        (),
        "anomalous sensors mean short life; status marks repairs; drift features measure wear (fleet)",
    ),
)
TASK_BY_NAME: dict[str, Task] = {task.name: task for task in TASKS}


def design_matrix(features: np.ndarray, machine_status: np.ndarray) -> np.ndarray:
    """The model inputs: the 67 features with ``machine_status`` appended as column 67.

    Parameters
    ----------
    features : ndarray of shape (n, 67)
    machine_status : ndarray of shape (n,)

    Returns
    -------
    ndarray of shape (n, 68), float64, C-contiguous
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[1] != len(FEATURE_NAMES):
        raise InvalidInputError(f"features must have shape (n, {len(FEATURE_NAMES)}), not {features.shape}")
    status = np.asarray(machine_status)
    if status.shape != (features.shape[0],):
        raise InvalidInputError(f"machine_status must have shape ({features.shape[0]},), not {status.shape}")
    out = np.empty((features.shape[0], len(INPUT_COLUMNS)))
    out[:, : len(FEATURE_NAMES)] = features
    out[:, STATUS_COLUMN] = status
    return out


def targets(table: pa.Table) -> dict[str, np.ndarray]:
    """The target of each task (see :meth:`Task.target`), for a table from
    :func:`engine.data.loading.load_telemetry`."""
    return {task.name: task.target(table) for task in TASKS}


def inputs_and_targets(source, *, utc_offset_minutes: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Load telemetry with labels and return the (n, 68) inputs and the targets of the five tasks."""
    table = load_telemetry(source)
    features = features_of_valid_table(table, utc_offset_minutes)
    return design_matrix(features, table.column("machine_status").to_numpy()), targets(table)
