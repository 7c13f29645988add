"""Replaying telemetry through :class:`engine.stream.scorer.StreamScorer`: what ``iotengine stream`` runs.

A :class:`ReplaySource` is telemetry in arrival order (a file's row order; a generated fleet's time order, with
a few samples delivered late). :class:`Replay` feeds it to the scorer in micro-batches, as fast as possible
(one batch per tick: the consecutive samples that share a timestamp) or at ``speed`` times real time (each
batch is every sample whose time has come), raises alerts through :class:`engine.stream.alerts.AlertTracker`, and
ends with a :class:`StreamSummary`.

Latency is per sample, from the moment the sample was available (paced: its due time; as fast as possible:
the start of its batch's call) to the moment its scores were returned and its alerts decided.

With a state file, the replay checkpoints every ``checkpoint_every_s`` seconds and when it stops
(:mod:`engine.stream.checkpoint`), together with the committed length of its output files; a replay started with
the same state file, bundle and source truncates the outputs to that length and continues from the next
sample, so every sample is scored exactly once and the scores are those of an uninterrupted replay.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from engine.bundle.format import MANIFEST, Bundle
from engine.data.loading import load_telemetry_with_report
from engine.data.schema import FAILURE_TYPES, SENSORS
from engine.errors import InvalidInputError, StreamStateError
from engine.stream.alerts import (
    ALERT_TASKS,
    Alert,
    AlertExplainer,
    AlertQuality,
    AlertTracker,
    alert_quality,
    alert_rules,
)
from engine.stream.checkpoint import StreamState, read_state, write_state
from engine.stream.scorer import StreamScorer

__all__ = ["Replay", "ReplayOptions", "ReplaySource", "StreamSummary", "fleet_source", "source_from_file"]

SCORE_COLUMNS = (
    "row",
    "machine_id",
    "timestamp",
    "late",
    "anomaly_flag",
    "maintenance_required",
    "downtime_risk",
    "failure_type",
    *(f"p_{name.lower().replace(' ', '_')}" for name in FAILURE_TYPES),
    "predicted_remaining_life",
)
ALERT_COLUMNS = (
    "row",
    "machine_id",
    "time",
    "task",
    "score",
    "failure_type",
    "predicted_remaining_life",
    "drivers",
)
LATENCY_PERCENTILES = (50, 90, 99, 99.9)


@dataclass(frozen=True)
class ReplaySource:
    """Telemetry in arrival order, as arrays; ``labels`` holds the alerting tasks' label columns present."""

    name: str
    identity: dict
    machine_ids: np.ndarray
    timestamps: np.ndarray
    sensors: np.ndarray
    statuses: np.ndarray
    labels: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return int(self.machine_ids.shape[0])

    @classmethod
    def from_table(cls, table, name: str, identity: dict) -> ReplaySource:
        labels = {
            task: table.column(task).to_numpy().astype(np.float64) for task in ALERT_TASKS if task in table.column_names
        }
        return cls(
            name=name,
            identity=identity,
            machine_ids=np.ascontiguousarray(table.column("machine_id").to_numpy(), dtype=np.int64),
            timestamps=np.ascontiguousarray(table.column("timestamp").cast("int64").to_numpy(), dtype=np.int64),
            sensors=np.ascontiguousarray(
                np.column_stack([table.column(s).to_numpy(zero_copy_only=False) for s in SENSORS]), dtype=np.float64
            ),
            statuses=np.ascontiguousarray(table.column("machine_status").to_numpy(), dtype=np.int32),
            labels=labels,
        )


def source_from_file(path: str | os.PathLike) -> ReplaySource:
    """A telemetry file (CSV in the Kaggle layout, Parquet, Arrow IPC), replayed in its row order."""
    path = Path(path)
    table, _ = load_telemetry_with_report(path)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    identity = {"kind": "file", "path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    return ReplaySource.from_table(table, str(path), identity)


def fleet_source(
    rows: int = 20_000, *, machines: int = 50, seed: int = 0, interval_s: int = 300, late_rate: float = 0.001
) -> ReplaySource:
    """Generated fleet telemetry with labels (engine.data.synthetic, fleet mode), in time order, except that a fraction
    ``late_rate`` of the samples is delivered after their machine's next sample, as a slow network does: the
    scorer rejects those as late (spec: late samples)."""
    from engine.data.synthetic import generate

    if not 0.0 <= late_rate < 1.0:
        raise InvalidInputError(f"late_rate must be in [0, 1), not {late_rate}")
    table = generate(rows, machines=machines, mode="fleet", seed=seed, interval_s=interval_s)
    arrival = np.arange(table.num_rows, dtype=np.float64)
    delayed = np.random.default_rng([seed, 7]).random(table.num_rows) < late_rate
    arrival[delayed] += machines + 0.5  # time-major rows: the machine's next sample is `machines` rows later
    table = table.take(np.argsort(arrival, kind="stable"))
    identity = {
        "kind": "generated",
        "mode": "fleet",
        "rows": rows,
        "machines": machines,
        "seed": seed,
        "interval_s": interval_s,
        "late_rate": late_rate,
    }
    name = f"generated fleet ({table.num_rows:,} samples, {machines} machines, seed {seed})"
    return ReplaySource.from_table(table, name, identity)


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


@dataclass
class StreamSummary:
    """What a replay did. Counts cover the whole stream (across restarts) unless named ``session``."""

    source: str
    backend: str
    models: str
    rows: int
    resumed_from: int
    position: int
    session_samples: int
    accepted: int
    late: int
    missing: dict[str, int]
    machines: int
    alerts: dict[str, int]
    active_alerts: dict[str, int]
    quality: list[AlertQuality]
    latency_us: dict[str, float]
    seconds: float
    interrupted: bool

    @property
    def finished(self) -> bool:
        return self.position >= self.rows

    @property
    def samples_per_second(self) -> float:
        return self.session_samples / self.seconds if self.seconds > 0 else float("nan")

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "backend": self.backend,
            "models": self.models,
            "rows": self.rows,
            "resumed_from": self.resumed_from,
            "position": self.position,
            "finished": self.finished,
            "interrupted": self.interrupted,
            "session_samples": self.session_samples,
            "seconds": self.seconds,
            "samples_per_second": self.samples_per_second,
            "accepted": self.accepted,
            "late": self.late,
            "missing": self.missing,
            "machines": self.machines,
            "alerts": self.alerts,
            "active_alerts": self.active_alerts,
            "quality": [
                {
                    "task": q.task,
                    "alerts": q.alerts,
                    "hits": q.hits,
                    "episodes": q.episodes,
                    "episodes_alerted": q.episodes_alerted,
                    "precision": _number(q.precision),
                    "recall": _number(q.recall),
                }
                for q in self.quality
            ],
            "latency_us": self.latency_us,
        }

    def markdown(self) -> str:
        """The summary as Markdown tables."""
        state = "interrupted" if self.interrupted else ("finished" if self.finished else "stopped at its limit")
        lines = [
            f"- source: {self.source}; backend `{self.backend}`, model set `{self.models}`",
            f"- {state} at sample {self.position:,} of {self.rows:,}"
            + (f" (resumed at {self.resumed_from:,})" if self.resumed_from else ""),
            f"- this run: {self.session_samples:,} samples in {self.seconds:.2f} s "
            f"({self.samples_per_second:,.0f} samples/s)",
            f"- samples scored {self.accepted:,}, late (rejected, spec policy) {self.late:,}, machines {self.machines}",
            "- missing sensor values (scored as missing, spec policy): "
            + ", ".join(f"{name} {count:,}" for name, count in self.missing.items()),
            "",
            "| task | alerts | active at the end | labelled episodes | episodes alerted | precision | recall |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        by_task = {q.task: q for q in self.quality}
        for task, count in self.alerts.items():
            q = by_task.get(task)
            cells = (
                [f"{q.episodes:,}", f"{q.episodes_alerted:,}", format_fraction(q.precision), format_fraction(q.recall)]
                if q
                else ["no labels", "", "", ""]
            )
            lines.append(f"| {task} | {count:,} | {self.active_alerts.get(task, 0):,} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "| latency per sample | " + " | ".join(f"p{p:g}" for p in LATENCY_PERCENTILES) + " | max |",
            "| --- | " + " | ".join("---" for _ in LATENCY_PERCENTILES) + " | --- |",
            "| µs | "
            + " | ".join(f"{self.latency_us.get(f'p{p:g}', float('nan')):,.1f}" for p in LATENCY_PERCENTILES)
            + f" | {self.latency_us.get('max', float('nan')):,.1f} |",
        ]
        return "\n".join(lines)


def _number(value: float) -> float | None:
    """JSON has no NaN: an undefined ratio is null."""
    return None if np.isnan(value) else float(value)


def format_fraction(value: float | None) -> str:
    """A precision or recall for a table: undefined ratios (NaN here, null in summary.json) are "n/a"."""
    return "n/a" if value is None or np.isnan(value) else f"{value:.3f}"


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
    ):
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        self.source = source
        self.backend = backend
        self.options = options
        self.state_path = None if state_path is None else Path(state_path)
        self.on_alert = on_alert
        self.on_progress = on_progress
        self.rules = alert_rules(self.bundle.thresholds, options.rul_hours)
        self._bundle_sha = hashlib.sha256((self.bundle.path / MANIFEST).read_bytes()).hexdigest()
        self._explainer = AlertExplainer(self.bundle)
        state = read_state(self.state_path) if self.state_path and self.state_path.exists() else None
        if state is None:
            self.scorer = StreamScorer(self.bundle, backend=backend)
            self.tracker = AlertTracker(
                self.rules, raise_after=options.raise_after, clear_after=options.clear_after, warmup=options.warmup
            )
            self.alerts: list[Alert] = []
            self.position = 0
            committed: dict[str, int] = {}
        else:
            self._check_resumable(state)
            self.scorer = StreamScorer.restore(self.bundle, state.snapshot, backend=backend)
            self.tracker = AlertTracker.restore(state.tracker)
            self.alerts = [Alert.from_json(entry) for entry in state.alerts]
            self.position = state.position
            committed = state.outputs
        self.resumed_from = self.position
        self._ran = False
        self._outputs = {}
        for name, path, header in (("scores", scores_path, SCORE_COLUMNS), ("alerts", alerts_path, ALERT_COLUMNS)):
            if path is not None:
                self._outputs[name] = _open_output(Path(path), header, committed.get(name), name)

    def _check_resumable(self, state: StreamState) -> None:
        where = self.state_path
        if state.bundle != self._bundle_sha:
            raise StreamStateError(f"{where}: written with another bundle than {self.bundle.path}")
        if state.source != self.source.identity:
            raise StreamStateError(
                f"{where}: written for another source ({_describe(state.source)}), "
                f"not {_describe(self.source.identity)}"
            )
        if state.position > self.source.rows:
            raise StreamStateError(f"{where}: position {state.position} is past the source's {self.source.rows} rows")
        saved = [[r.task, r.raise_at, r.clear_below, r.low] for r in self.rules]
        if (
            state.tracker.get("rules") != saved
            or state.tracker.get("raise_after") != self.options.raise_after
            or state.tracker.get("clear_after") != self.options.clear_after
            or state.tracker.get("warmup") != self.options.warmup
        ):
            raise StreamStateError(
                f"{where}: written with other alert settings (thresholds, --raise-after, --clear-after, --warmup)"
            )

    # ------------------------------------------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> StreamSummary:
        """Replay from the current position to the end (or the limit, or until ``should_stop()``). A replay runs
        once (its output files are closed at the end); a new :class:`Replay` on the same state file continues."""
        if self._ran:
            raise RuntimeError("this Replay has run; continue with a new Replay on the same state file")
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
        scores = self.scorer.score_batch(
            ids, source.timestamps[start:stop], source.sensors[start:stop], source.statuses[start:stop], remember=True
        )
        late = np.zeros(stop - start, dtype=bool)
        late[self.scorer.last_late] = True
        raised = self.tracker.update(ids, scores, late)
        decided = time.perf_counter()
        if "scores" in self._outputs:
            self._outputs["scores"].write(_score_lines(start, ids, source.timestamps[start:stop], late, scores))
        rows = sorted({int(r) for task_rows in raised.values() for r in task_rows})
        if not rows:
            return decided
        inputs = dict(zip(rows, self.scorer.last_batch_inputs(rows), strict=True))
        new = []
        for rule in self.rules:
            task_rows = raised[rule.task]
            if not task_rows.size:
                continue
            drivers = self._explainer.drivers(rule.task, np.array([inputs[int(r)] for r in task_rows]), rule.low)
            for r, why in zip(task_rows.tolist(), drivers, strict=True):
                new.append(
                    Alert(
                        row=start + r,
                        machine_id=int(ids[r]),
                        timestamp=int(source.timestamps[start + r]),
                        task=rule.task,
                        score=float(scores[rule.task][r]),
                        failure_type=str(scores["failure_type"][r]),
                        remaining_life=float(scores["predicted_remaining_life"][r]),
                        drivers=why,
                    )
                )
        new.sort(key=lambda a: (a.row, ALERT_TASKS.index(a.task)))
        self.alerts.extend(new)
        if "alerts" in self._outputs:
            self._outputs["alerts"].write("".join(_alert_line(a) for a in new))
        if self.on_alert is not None:
            for alert in new:
                self.on_alert(alert)
        return decided

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
        latency = {}
        if latency_us.size:
            latency = {
                f"p{p:g}": float(v)
                for p, v in zip(LATENCY_PERCENTILES, np.percentile(latency_us, LATENCY_PERCENTILES), strict=True)
            }
            latency["max"] = float(latency_us.max())
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


def _describe(identity: dict) -> str:
    if identity.get("kind") == "file":
        return f"file {identity.get('path')}"
    return ", ".join(f"{k}={v}" for k, v in identity.items())


class _Output:
    """An append-only CSV whose committed length is recorded in the checkpoint."""

    def __init__(self, path: Path, file):
        self.path = path
        self._file = file

    def write(self, text: str) -> None:
        self._file.write(text)

    def commit(self) -> int:
        self._file.flush()
        os.fsync(self._file.fileno())
        return self._file.tell()

    def close(self) -> None:
        self._file.close()


def _open_output(path: Path, header: tuple[str, ...], committed: int | None, name: str) -> _Output:
    """A fresh CSV with its header, or, when resuming, the existing one cut back to its committed length."""
    header_line = ",".join(header) + "\n"
    if committed is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = path.open("w", newline="")
        file.write(header_line)
        return _Output(path, file)
    if not path.exists() or path.stat().st_size < committed:
        raise StreamStateError(
            f"{path}: the checkpoint committed {committed:,} bytes of {name}, but the file "
            + ("is missing" if not path.exists() else f"has {path.stat().st_size:,}")
        )
    with path.open("rb") as f:
        if not f.read(len(header_line)).decode("utf-8", "replace") == header_line:
            raise StreamStateError(f"{path}: not the {name} file this stream writes (its header differs)")
    file = path.open("r+", newline="")
    file.truncate(committed)  # rows written after the checkpoint are scored again, once
    file.seek(committed)
    return _Output(path, file)


def _score_lines(start: int, ids, timestamps, late, scores: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    proba = scores["failure_type_proba"]
    for r in range(ids.shape[0]):
        writer.writerow(
            (
                start + r,
                int(ids[r]),
                int(timestamps[r]),
                int(late[r]),
                repr(float(scores["anomaly_flag"][r])),
                repr(float(scores["maintenance_required"][r])),
                repr(float(scores["downtime_risk"][r])),
                scores["failure_type"][r],
                *(repr(float(p)) for p in proba[r]),
                repr(float(scores["predicted_remaining_life"][r])),
            )
        )
    return buffer.getvalue()


def iso_time(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def format_drivers(drivers) -> str:
    return "; ".join(f"{name}={value:.4g} ({push:+.3g})" for name, value, push in drivers)


def _alert_line(alert: Alert) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(
        (
            alert.row,
            alert.machine_id,
            iso_time(alert.timestamp),
            alert.task,
            repr(alert.score),
            alert.failure_type,
            repr(alert.remaining_life),
            format_drivers(alert.drivers),
        )
    )
    return buffer.getvalue()
