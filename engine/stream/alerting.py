"""One micro-batch through the scorer and the alerts: what a file replay and a live MQTT stream both run.

:class:`AlertingScorer` scores a batch with :class:`engine.stream.scorer.StreamScorer`, advances the
:class:`engine.stream.alerts.AlertTracker` and explains every alert raised (TreeSHAP drivers, or the detector's
residuals), so both kinds of stream raise the same alerts for the same samples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from engine.errors import StreamStateError
from engine.models.autoencoder import SCORE_NAME
from engine.stream.alerts import ALERT_TASKS, Alert, AlertExplainer, AlertTracker, residual_drivers
from engine.stream.scorer import StreamScorer

__all__ = ["AlertingScorer", "BatchResult", "check_alert_settings"]


@dataclass(frozen=True)
class BatchResult:
    """A batch's scores (as :meth:`StreamScorer.score_batch`), which rows were late, the alerts it raised (in row
    then task order) and when they were decided (``time.perf_counter``)."""

    scores: dict
    late: np.ndarray
    alerts: list[Alert]
    decided: float


class AlertingScorer:
    """Scores micro-batches and decides and explains their alerts."""

    def __init__(self, bundle, scorer: StreamScorer, tracker: AlertTracker):
        self.scorer = scorer
        self.tracker = tracker
        self.rules = tracker.rules
        self._explainer = AlertExplainer(bundle)

    def step(self, first_row: int, ids, timestamps, sensors, statuses) -> BatchResult:
        """Score one batch in arrival order; ``first_row`` is its first sample's position in the stream."""
        scores = self.scorer.score_batch(ids, timestamps, sensors, statuses, remember=True)
        late = np.zeros(ids.shape[0], dtype=bool)
        late[self.scorer.last_late] = True
        raised = self.tracker.update(ids, scores, late)
        decided = time.perf_counter()
        rows = sorted({int(r) for task_rows in raised.values() for r in task_rows})
        if not rows:
            return BatchResult(scores, late, [], decided)
        inputs = dict(zip(rows, self.scorer.last_batch_inputs(rows), strict=True))
        alerts = []
        for rule in self.rules:
            task_rows = raised[rule.task]
            if not task_rows.size:
                continue
            rows_inputs = np.array([inputs[int(r)] for r in task_rows])
            if rule.task == SCORE_NAME:
                drivers = residual_drivers(scores, task_rows, rows_inputs)
            else:
                drivers = self._explainer.drivers(rule.task, rows_inputs, rule.low)
            for r, why in zip(task_rows.tolist(), drivers, strict=True):
                alerts.append(
                    Alert(
                        row=first_row + r,
                        machine_id=int(ids[r]),
                        timestamp=int(timestamps[r]),
                        task=rule.task,
                        score=float(scores[rule.task][r]),
                        failure_type=str(scores["failure_type"][r]),
                        remaining_life=float(scores["predicted_remaining_life"][r]),
                        drivers=why,
                    )
                )
        alerts.sort(key=lambda a: (a.row, ALERT_TASKS.index(a.task)))
        return BatchResult(scores, late, alerts, decided)


def check_alert_settings(where, tracker_state: dict, rules, raise_after: int, clear_after: int, warmup: int) -> None:
    """Refuse to resume a checkpoint whose alert hysteresis was written with other rules or settings."""
    saved = [[r.task, r.raise_at, r.clear_below, r.low] for r in rules]
    if (
        tracker_state.get("rules") != saved
        or tracker_state.get("raise_after") != raise_after
        or tracker_state.get("clear_after") != clear_after
        or tracker_state.get("warmup") != warmup
    ):
        raise StreamStateError(
            f"{where}: written with other alert settings (thresholds, --raise-after, --clear-after, --warmup)"
        )
