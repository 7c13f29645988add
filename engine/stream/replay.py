"""Replaying telemetry through :class:`engine.stream.scorer.StreamScorer`: what ``iotengine stream`` runs.

A :class:`ReplaySource` is telemetry in arrival order (a file's row order; a generated fleet's time order, with
a few samples delivered late). :class:`Replay` feeds it to the scorer in micro-batches, as fast as possible
(one batch per tick: the consecutive samples that share a timestamp) or at ``speed`` times real time (each
batch is every sample whose time has come), raises alerts through :class:`engine.stream.alerts.AlertTracker`, and
ends with a :class:`StreamSummary`.

Latency is per sample, from the moment the sample was available (paced: its due time; as fast as possible:
the start of its batch's call) to the moment its scores were returned and its alerts decided.

With a state file, the replay checkpoints every ``checkpoint_every_s`` seconds and when it stops
(:mod:`engine.stream.checkpoint`), together with the committed length and sha256 of its output files; a replay
started with the same state file, bundle and source truncates the outputs to that length and continues from the next
sample, so every sample is scored exactly once and the scores are those of an uninterrupted replay.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.bundle.files import MANIFEST
from engine.bundle.format import Bundle
from engine.errors import InvalidInputError, StreamStateError
from engine.stream.alerting import AlertingScorer, check_alert_settings
from engine.stream.alerts import Alert, AlertTracker, alert_quality, alert_rules
from engine.stream.checkpoint import StreamState, read_state, write_state
from engine.stream.outputs import alert_line, open_outputs, score_lines
from engine.stream.scorer import StreamScorer
from engine.stream.sources import ReplaySource
from engine.stream.summary import StreamSummary, latency_percentiles

__all__ = ["Replay", "ReplayOptions"]


@dataclass(frozen=True)
class ReplayOptions:
    """``speed``: times real time (None: as fast as possible); ``limit``: stop after this many samples."""

    speed: float | None = None
    max_batch: int = 4096
    raise_after: int = 2
    clear_after: int = 12
    warmup: int = 12
    rul_hours: float = 24.0
    checkpoint_every_s: float = 10.0
    limit: int | None = None

    def __post_init__(self):
        if self.speed is not None and not self.speed > 0:
            raise InvalidInputError(f"speed must be positive, not {self.speed}")
        if self.max_batch < 1:
            raise InvalidInputError(f"max_batch must be at least 1, not {self.max_batch}")
        if not self.checkpoint_every_s > 0:
            raise InvalidInputError(f"checkpoint_every_s must be positive, not {self.checkpoint_every_s}")
        if self.limit is not None and self.limit < 0:
            raise InvalidInputError(f"limit must not be negative, not {self.limit}")


class Replay:
    """One replay of a source through a bundle's models.

    Parameters
    ----------
    bundle : Bundle or path
    source : ReplaySource
    backend : {"c", "python"}
    options : ReplayOptions
    state_path : path, optional
        Checkpoint file: resumed from when it exists, written periodically and when the replay stops.
    scores_path, alerts_path : path, optional
        CSV of every sample's scores, and of every alert.
    on_alert : callable(Alert), optional
    on_progress : callable(position, rows, machines, alerts), optional
        Called at most four times a second.
    initial_states : bytes, optional
        A snapshot (e.g. :func:`engine.backfill.states.read_states` of a backfill's states) the machines start
        from, instead of empty states; ignored when ``state_path`` holds a checkpoint to resume.
    """

    def __init__(
        self,
        bundle,
        source: ReplaySource,
        *,
        backend: str = "c",
        options: ReplayOptions = ReplayOptions(),
        state_path: str | os.PathLike | None = None,
        scores_path: str | os.PathLike | None = None,
        alerts_path: str | os.PathLike | None = None,
        on_alert: Callable[[Alert], None] | None = None,
        on_progress: Callable[[int, int, int, int], None] | None = None,
        initial_states: bytes | None = None,
    ):
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        self.source = source
        self.backend = backend
        self.options = options
        self.state_path = None if state_path is None else Path(state_path)
        self.on_alert = on_alert
        self.on_progress = on_progress
        detector = self.bundle.unsupervised
        self.rules = alert_rules(
            self.bundle.thresholds, options.rul_hours, None if detector is None else detector["threshold"]
        )
        self._bundle_sha = hashlib.sha256((self.bundle.path / MANIFEST).read_bytes()).hexdigest()
        state = read_state(self.state_path) if self.state_path and self.state_path.exists() else None
        if state is None:  # a new replay: empty machines, or warm ones (a backfill's states, a snapshot)
            if initial_states is None:
                self.scorer = StreamScorer(self.bundle, backend=backend)
            else:
                self.scorer = StreamScorer.restore(self.bundle, initial_states, backend=backend)
            self.tracker = AlertTracker(
                self.rules, raise_after=options.raise_after, clear_after=options.clear_after, warmup=options.warmup
            )
            self.alerts: list[Alert] = []
            self.position = 0
            committed: dict[str, dict] = {}
        else:
            self._check_resumable(state)
            wanted = {name for name, path in (("scores", scores_path), ("alerts", alerts_path)) if path is not None}
            if set(state.outputs) != wanted:
                raise StreamStateError(
                    f"{self.state_path}: the checkpoint committed {_listing(state.outputs)}; this run asks for "
                    f"{_listing(wanted)}: resume with the same --scores and --alerts, or start a new --state"
                )
            try:
                self.scorer = StreamScorer.restore(self.bundle, state.snapshot, backend=backend)
                self.tracker = AlertTracker.restore(state.tracker)
                self.alerts = [Alert.from_json(entry) for entry in state.alerts]
            except (InvalidInputError, KeyError, TypeError, ValueError) as exc:
                raise StreamStateError(f"{self.state_path}: the checkpoint's states cannot be restored: {exc}") from exc
            self.position = state.position
            committed = state.outputs
        self._step = AlertingScorer(self.bundle, self.scorer, self.tracker)
        self.resumed_from = self.position
        self._ran = False
        self._outputs = open_outputs(
            scores_path, alerts_path, committed, None if state is None else self.position, self.state_path
        )

    def _check_resumable(self, state: StreamState) -> None:
        where = self.state_path
        if state.bundle != self._bundle_sha:
            raise StreamStateError(f"{where}: written with another bundle than {self.bundle.path}")
        old, new = state.source, self.source.identity
        if old != new and old.get("kind") == new.get("kind") == "file" and old.get("path") == new.get("path"):
            raise StreamStateError(
                f"{where}: {new['path']} has changed since the checkpoint was written ({old.get('bytes')} bytes "
                f"then, {new['bytes']} now; sha256 {str(old.get('sha256'))[:12]}... then, {new['sha256'][:12]}... now)"
            )
        if state.source != self.source.identity:
            raise StreamStateError(
                f"{where}: written for another source ({_describe(state.source)}), "
                f"not {_describe(self.source.identity)}"
            )
        if state.position > self.source.rows:
            raise StreamStateError(f"{where}: position {state.position} is past the source's {self.source.rows} rows")
        check_alert_settings(
            where, state.tracker, self.rules, self.options.raise_after, self.options.clear_after, self.options.warmup
        )

    # ------------------------------------------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> StreamSummary:
        """Replay from the current position to the end (or the limit, or until ``should_stop()``). A replay runs
        once (its output files are closed at the end); a new :class:`Replay` on the same state file continues."""
        if self._ran:
            raise InvalidInputError("this Replay has run; continue with a new Replay on the same state file")
        self._ran = True
        source, options = self.source, self.options
        end = source.rows if options.limit is None else min(source.rows, self.position + options.limit)
        clock = np.maximum.accumulate(source.timestamps) if source.rows else source.timestamps
        tick_ends = _tick_ends(source.timestamps)
        latencies: list[np.ndarray] = []
        interrupted = False
        started = time.perf_counter()
        last_checkpoint = last_progress = started
        clock_start = int(clock[self.position]) if self.position < end else 0
        while self.position < end:
            if should_stop():
                interrupted = True
                break
            start = self.position
            if options.speed is None:
                stop = min(end, start + options.max_batch, int(tick_ends[np.searchsorted(tick_ends, start, "right")]))
                due = None
            else:
                now_clock = clock_start + (time.perf_counter() - started) * options.speed
                stop = min(end, start + options.max_batch, int(np.searchsorted(clock, now_clock, "right")))
                if stop <= start:
                    wait = (clock[start] - now_clock) / options.speed
                    time.sleep(min(max(wait, 0.0), 0.1))
                    continue
                due = started + (clock[start:stop] - clock_start) / options.speed
            call_started = time.perf_counter()
            decided = self._score(start, stop)
            latencies.append(decided - (due if due is not None else np.full(stop - start, call_started)))
            finished = time.perf_counter()
            self.position = stop
            if self.state_path is not None and finished - last_checkpoint >= options.checkpoint_every_s:
                self.checkpoint()
                last_checkpoint = time.perf_counter()
            if self.on_progress is not None and finished - last_progress >= 0.25:
                self.on_progress(self.position, source.rows, len(self.scorer.machines), len(self.alerts))
                last_progress = finished
        seconds = time.perf_counter() - started
        if self.state_path is not None:
            self.checkpoint()
        for output in self._outputs.values():
            output.close()
        return self._summary(np.concatenate(latencies) * 1e6 if latencies else np.empty(0), seconds, interrupted)

    def _score(self, start: int, stop: int) -> float:
        """Score rows start..stop, decide their alerts, write them out; returns when the alerts were decided."""
        source = self.source
        ids = source.machine_ids[start:stop]
        timestamps = source.timestamps[start:stop]
        result = self._step.step(start, ids, timestamps, source.sensors[start:stop], source.statuses[start:stop])
        if "scores" in self._outputs:
            self._outputs["scores"].write(score_lines(start, ids, timestamps, result.late, result.scores))
        if not result.alerts:
            return result.decided
        self.alerts.extend(result.alerts)
        if "alerts" in self._outputs:
            self._outputs["alerts"].write("".join(alert_line(a) for a in result.alerts))
        if self.on_alert is not None:
            for alert in result.alerts:
                self.on_alert(alert)
        return result.decided

    def checkpoint(self) -> None:
        """Commit the outputs written so far and the states, atomically; a restart resumes from here."""
        outputs = {name: output.commit() for name, output in self._outputs.items()}
        write_state(
            self.state_path,
            StreamState(
                bundle=self._bundle_sha,
                source=self.source.identity,
                position=self.position,
                snapshot=self.scorer.snapshot(),
                tracker=self.tracker.state(),
                alerts=[a.to_json() for a in self.alerts],
                outputs=outputs,
            ),
        )

    def _summary(self, latency_us: np.ndarray, seconds: float, interrupted: bool) -> StreamSummary:
        stats = self.scorer.stats
        counts = {rule.task: 0 for rule in self.rules}
        for alert in self.alerts:
            counts[alert.task] += 1
        quality = []
        consumed = slice(0, self.position)
        for rule in self.rules:
            labels = self.source.labels.get(rule.task)
            if labels is None:
                continue
            rows = np.array([a.row for a in self.alerts if a.task == rule.task], dtype=np.int64)
            quality.append(
                alert_quality(rule, self.source.machine_ids[consumed], labels[consumed], rows, self.tracker.clear_after)
            )
        latency = latency_percentiles(latency_us)
        return StreamSummary(
            source=self.source.name,
            backend=self.backend,
            models=self.scorer.models,
            rows=self.source.rows,
            resumed_from=self.resumed_from,
            position=self.position,
            session_samples=self.position - self.resumed_from,
            accepted=stats.accepted,
            late=stats.late,
            missing=dict(stats.missing),
            machines=stats.machines,
            alerts=counts,
            active_alerts=self.tracker.active(),
            quality=quality,
            latency_us=latency,
            seconds=seconds,
            interrupted=interrupted,
        )


def _tick_ends(timestamps: np.ndarray) -> np.ndarray:
    """End (exclusive) of every run of consecutive equal timestamps, ascending."""
    if timestamps.size == 0:
        return np.zeros(1, dtype=np.int64)
    return np.r_[np.flatnonzero(timestamps[1:] != timestamps[:-1]) + 1, timestamps.size]


def _listing(names) -> str:
    return " and ".join(f"--{name}" for name in sorted(names)) or "no --scores or --alerts file"


def _describe(identity: dict) -> str:
    if identity.get("kind") == "file":
        return f"file {identity.get('path')}"
    return ", ".join(f"{k}={v}" for k, v in identity.items())
