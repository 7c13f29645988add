"""Alerts from streaming scores: hysteresis per machine and task, what drove each alert, and how good they were.

:class:`AlertTracker` turns each scored sample into at most one alert per machine and task per episode of
trouble (:mod:`kernels.hysteresis`), after a machine's first ``warmup`` samples: a binary task raises when
its probability reaches the bundle's decision threshold on ``raise_after`` consecutive samples, and clears
after ``clear_after`` consecutive samples under half of it; the unsupervised detector's score
(``unsupervised_anomaly``, with a bundle that has it) likewise with its threshold; remaining life raises when
the predicted hours fall to ``rul_hours`` and clears above 1.5 times that. Its state is plain JSON, so a stream
checkpoint carries it.

:class:`AlertExplainer` names the features that drove an alert: the largest TreeSHAP contributions
(LightGBM's ``pred_contrib``) of the task's LightGBM model for that sample, towards the alert. When the chosen
model is a LightGBM model these are exact contributions to the score that alerted; otherwise they explain the
task's LightGBM model on the same inputs, the closest exact attribution the bundle holds. An unsupervised
alert's drivers are its sensors with the largest |standardized residual| (:func:`residual_drivers`): what
disagreed with what the rest of the machine and its history predicted.

:func:`alert_quality` scores alerts against labels, per episode: a labelled episode is a run of positive
samples of one machine (runs less than ``clear_after`` samples apart are one episode); an alert is a hit when
it falls in an episode or within ``clear_after`` samples after it; precision is hits over alerts and recall the
episodes with at least one alert over all episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import InvalidInputError
from engine.features.batch import FEATURE_NAMES
from engine.features.machine_index import MachineIndex
from engine.models.autoencoder import RESIDUAL_NAMES, SCORE_NAME
from kernels.hysteresis import empty_state, hysteresis_step
from kernels.names import SENSORS

__all__ = [
    "ALERT_LABELS",
    "ALERT_TASKS",
    "Alert",
    "AlertExplainer",
    "AlertRule",
    "AlertTracker",
    "alert_quality",
    "alert_rules",
    "residual_drivers",
]

ALERT_TASKS = ("anomaly_flag", "maintenance_required", "downtime_risk", SCORE_NAME, "predicted_remaining_life")
# The labels an alert of each task is graded against (the unsupervised detector's are the anomaly labels).
ALERT_LABELS = {**{task: task for task in ALERT_TASKS}, SCORE_NAME: "anomaly_flag"}
INPUT_NAMES = (*FEATURE_NAMES, "machine_status")


@dataclass(frozen=True)
class AlertRule:
    """When a task raises and clears: ``score >= raise_at`` and ``score < clear_below`` (or, with ``low``,
    ``score <= raise_at`` and ``score > clear_below``)."""

    task: str
    raise_at: float
    clear_below: float
    low: bool = False

    def levels(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.low:
            return scores <= self.raise_at, scores > self.clear_below
        return scores >= self.raise_at, scores < self.clear_below

    def label_positive(self, labels: np.ndarray) -> np.ndarray:
        """Which labels count as the condition the alert is for (NaN never does)."""
        with np.errstate(invalid="ignore"):
            return labels <= self.raise_at if self.low else labels >= 0.5


def alert_rules(
    thresholds: dict[str, float], rul_hours: float = 24.0, unsupervised: float | None = None
) -> tuple[AlertRule, ...]:
    """The rules of the alerting tasks, from a bundle's decision thresholds (0.5 where it has none) and its
    unsupervised detector's threshold (no rule without one)."""
    if not rul_hours > 0:
        raise InvalidInputError(f"rul_hours must be positive, not {rul_hours}")
    rules = []
    for task in ALERT_TASKS[:3]:
        level = float(thresholds.get(task, 0.5))
        rules.append(AlertRule(task, level, level / 2))
    if unsupervised is not None:
        rules.append(AlertRule(SCORE_NAME, float(unsupervised), float(unsupervised) / 2))
    rules.append(AlertRule("predicted_remaining_life", float(rul_hours), 1.5 * float(rul_hours), low=True))
    return tuple(rules)


@dataclass(frozen=True)
class Alert:
    """One raised alert. ``row`` is the sample's position in the stream; ``drivers`` are (input name, its value,
    its contribution towards the alert) for the largest contributions."""

    row: int
    machine_id: int
    timestamp: int
    task: str
    score: float
    failure_type: str
    remaining_life: float
    drivers: tuple[tuple[str, float, float], ...] = ()

    def to_json(self) -> dict:
        return {
            "row": self.row,
            "machine_id": self.machine_id,
            "timestamp": self.timestamp,
            "task": self.task,
            "score": self.score,
            "failure_type": self.failure_type,
            "remaining_life": self.remaining_life,
            "drivers": [list(d) for d in self.drivers],
        }

    @classmethod
    def from_json(cls, entry: dict) -> Alert:
        return cls(
            int(entry["row"]),
            int(entry["machine_id"]),
            int(entry["timestamp"]),
            str(entry["task"]),
            float(entry["score"]),
            str(entry["failure_type"]),
            float(entry["remaining_life"]),
            tuple((str(n), float(v), float(c)) for n, v, c in entry["drivers"]),
        )


class AlertTracker:
    """Hysteresis state of every machine for every rule.

    Parameters
    ----------
    rules : sequence of AlertRule
    raise_after, clear_after : int
        Consecutive samples past the raise level that raise an alert; under the clear level that clear it.
    warmup : int
        Samples of a machine before it may alert (its per-machine statistics are settling).
    """

    def __init__(self, rules, *, raise_after: int = 2, clear_after: int = 12, warmup: int = 12):
        if raise_after < 1 or clear_after < 1 or warmup < 0:
            raise InvalidInputError(
                f"raise_after and clear_after must be at least 1 and warmup at least 0, not {raise_after}, "
                f"{clear_after}, {warmup}"
            )
        self.rules = tuple(rules)
        self.raise_after = int(raise_after)
        self.clear_after = int(clear_after)
        self.warmup = int(warmup)
        self._index = MachineIndex()
        self._active, self._run, self._seen = empty_state(16, len(self.rules))
        self.update(np.empty(0, dtype=np.int64), {r.task: np.empty(0) for r in self.rules}, np.empty(0, bool))

    def update(self, machine_ids: np.ndarray, scores: dict[str, np.ndarray], skip: np.ndarray) -> dict[str, np.ndarray]:
        """Advance the hysteresis over a batch of scored samples (in arrival order).

        Returns, per task, the rows of the batch that raised an alert.
        """
        slots = self._slots(np.asarray(machine_ids, dtype=np.int64))
        n = slots.shape[0]
        up = np.empty((n, len(self.rules)), dtype=np.bool_)
        down = np.empty((n, len(self.rules)), dtype=np.bool_)
        for t, rule in enumerate(self.rules):
            up[:, t], down[:, t] = rule.levels(np.asarray(scores[rule.task], dtype=np.float64))
        raised = np.empty((n, len(self.rules)), dtype=np.bool_)
        hysteresis_step(
            slots,
            up,
            down,
            np.ascontiguousarray(skip, dtype=np.bool_),
            self._active,
            self._run,
            self._seen,
            self.warmup,
            self.raise_after,
            self.clear_after,
            raised,
        )
        return {rule.task: np.flatnonzero(raised[:, t]) for t, rule in enumerate(self.rules)}

    def active(self) -> dict[str, int]:
        """Alerts active now, per task."""
        used = self._active[: len(self._index)]
        return {rule.task: int(used[:, t].sum()) for t, rule in enumerate(self.rules)}

    def active_tasks(self, machine_id: int) -> list[str]:
        """The tasks whose alert is active for one machine now (none for a machine not seen)."""
        slot = self._index.get(int(machine_id))
        if slot is None:
            return []
        return [rule.task for t, rule in enumerate(self.rules) if self._active[slot, t]]

    def state(self) -> dict:
        """The tracker as JSON-ready data (:meth:`restore` reads it)."""
        used = len(self._index)
        return {
            "raise_after": self.raise_after,
            "clear_after": self.clear_after,
            "warmup": self.warmup,
            "rules": [[r.task, r.raise_at, r.clear_below, r.low] for r in self.rules],
            "machines": list(self._index.ids),
            "active": self._active[:used].astype(int).tolist(),
            "run": self._run[:used].tolist(),
            "seen": self._seen[:used].tolist(),
        }

    @classmethod
    def restore(cls, state: dict) -> AlertTracker:
        rules = [AlertRule(str(t), float(r), float(c), bool(low)) for t, r, c, low in state["rules"]]
        tracker = cls(
            rules,
            raise_after=int(state["raise_after"]),
            clear_after=int(state["clear_after"]),
            warmup=int(state["warmup"]),
        )
        machines = [int(m) for m in state["machines"]]
        tracker._slots(np.asarray(machines, dtype=np.int64))
        active = np.asarray(state["active"], dtype=np.bool_).reshape(-1, len(rules))
        run = np.asarray(state["run"], dtype=np.int64).reshape(-1, len(rules))
        seen = np.asarray(state["seen"], dtype=np.int64).reshape(-1)
        if not active.shape[0] == run.shape[0] == seen.shape[0] == len(machines):
            raise InvalidInputError("the alert state does not have one entry per machine")
        tracker._active[: len(machines)] = active
        tracker._run[: len(machines)] = run
        tracker._seen[: len(machines)] = seen
        return tracker

    def _slots(self, ids: np.ndarray) -> np.ndarray:
        slots = self._index.slots(ids)
        if len(self._index) > self._seen.shape[0]:
            capacity = self._seen.shape[0]
            active, run, seen = empty_state(max(2 * capacity, len(self._index)), len(self.rules))
            active[:capacity], run[:capacity], seen[:capacity] = self._active, self._run, self._seen
            self._active, self._run, self._seen = active, run, seen
        return slots


class AlertExplainer:
    """The inputs that drove an alert, from TreeSHAP contributions of the task's LightGBM model."""

    def __init__(self, bundle, top: int = 3):
        self.top = int(top)
        self._boosters = {}
        for task in ALERT_TASKS:
            booster = _lightgbm_booster(bundle, task)
            if booster is not None:
                self._boosters[task] = booster

    def drivers(self, task: str, inputs: np.ndarray, low: bool = False) -> list[tuple[tuple[str, float, float], ...]]:
        """For each row of ``inputs`` (n, 68): the ``top`` (name, value, contribution) pushing the score towards
        the alert (up for probabilities, down for ``low`` rules), largest first; () without a LightGBM model or
        for a row that was not scored."""
        inputs = np.atleast_2d(np.asarray(inputs, dtype=np.float64))
        booster = self._boosters.get(task)
        if booster is None or inputs.shape[0] == 0:
            return [()] * inputs.shape[0]
        contributions = np.asarray(booster.predict(inputs, pred_contrib=True, num_threads=1))[:, : len(INPUT_NAMES)]
        toward = -contributions if low else contributions
        result = []
        for row, push in zip(inputs, toward, strict=True):
            if np.isnan(row[: len(FEATURE_NAMES)]).all():
                result.append(())
                continue
            order = np.argsort(-push, kind="stable")[: self.top]
            result.append(tuple((INPUT_NAMES[k], float(row[k]), float(push[k])) for k in order if push[k] > 0))
        return result


def residual_drivers(
    scores: dict[str, np.ndarray], rows: np.ndarray, inputs: np.ndarray, top: int = 3
) -> list[tuple[tuple[str, float, float], ...]]:
    """For each row of an unsupervised alert: the ``top`` (sensor, its value, its standardized residual) with the
    largest |residual|, largest first; ``inputs`` are the rows' model inputs (their first five are the sensors)."""
    result = []
    for row, x in zip(np.asarray(rows, dtype=np.int64).tolist(), np.atleast_2d(inputs), strict=True):
        residuals = np.array([scores[name][row] for name in RESIDUAL_NAMES], dtype=np.float64)
        order = np.argsort(-np.nan_to_num(np.abs(residuals), nan=-1.0), kind="stable")[:top]
        result.append(tuple((SENSORS[k], float(x[k]), float(residuals[k])) for k in order if np.isfinite(residuals[k])))
    return result


def _lightgbm_booster(bundle, task: str):
    entry = bundle.entry(task)
    if entry is not None and entry["family"] == "lightgbm" and entry.get("columns") is None:
        return bundle.model(task).booster
    lightgbm = bundle.model_set("lightgbm").get(task)
    if lightgbm is not None and lightgbm.get("columns") is None:
        return bundle.load_set_model("lightgbm", task).booster
    return None


@dataclass(frozen=True)
class AlertQuality:
    task: str
    alerts: int
    hits: int
    episodes: int
    episodes_alerted: int

    @property
    def precision(self) -> float:
        return self.hits / self.alerts if self.alerts else float("nan")

    @property
    def recall(self) -> float:
        return self.episodes_alerted / self.episodes if self.episodes else float("nan")


def alert_quality(
    rule: AlertRule, machine_ids: np.ndarray, labels: np.ndarray, alert_rows: np.ndarray, clear_after: int
) -> AlertQuality:
    """Per-episode precision and recall of one task's alerts.

    Parameters
    ----------
    machine_ids, labels : (n,)
        Every scored sample in arrival order (late samples included: they are simply never positive alerts).
    alert_rows : int (k,)
        Positions (into ``machine_ids``) of the samples that raised this task's alerts.
    """
    machine_ids = np.asarray(machine_ids, dtype=np.int64)
    positive = rule.label_positive(np.asarray(labels, dtype=np.float64))
    alert_rows = np.asarray(alert_rows, dtype=np.int64)
    # Each machine's own sequence: order by machine, then arrival; k is the sample's index within its machine.
    order = np.argsort(machine_ids, kind="stable")
    sorted_ids = machine_ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    k = np.arange(order.shape[0]) - np.repeat(starts, np.diff(np.r_[starts, order.shape[0]]))
    local = np.empty_like(k)
    local[order] = k
    pos = order[positive[order]]  # positive samples, by machine then arrival
    if pos.size:
        m, idx = machine_ids[pos], local[pos]
        new = np.r_[True, (m[1:] != m[:-1]) | (idx[1:] - idx[:-1] > clear_after)]
        first = np.flatnonzero(new)
        last = np.r_[first[1:] - 1, pos.size - 1]
        episode_machine, episode_start, episode_end = m[first], idx[first], idx[last]
    else:
        episode_machine = episode_start = episode_end = np.empty(0, dtype=np.int64)
    hits, alerted = 0, set()
    for row in alert_rows.tolist():
        machine, at = machine_ids[row], local[row]
        candidates = np.flatnonzero(
            (episode_machine == machine) & (episode_start <= at) & (at <= episode_end + clear_after)
        )
        if candidates.size:
            hits += 1
            alerted.add(int(candidates[-1]))
    return AlertQuality(rule.task, int(alert_rows.size), hits, int(episode_start.size), len(alerted))
