"""The streaming stage of ``iotengine run``: a labelled replay through the C library of a fleet bundle, and its
report.

Writes into its folder::

    bundle/               LightGBM on fleet telemetry (engine.models.fleet_bundle), with its edge library
    STREAM.md             what was replayed, the summary (alerts per task, precision/recall, latency, late and
                          missing samples), the first alerts with their driving features, how to run it again
    summary.json          the summary, as ``iotengine stream --summary`` writes it
    alerts.csv, scores.csv
                          every alert; every sample's scores
    state.json            the checkpoint (``iotengine stream --state``) at the end of the replay
    stream.png            the machine with the most alerts: sensors, scores, labels and alerts over time
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv

from engine.data.schema import SENSORS
from engine.models.fleet_bundle import TRAIN_MACHINES, prepare_fleet_bundle
from engine.report.figures import pyplot, save_figure
from engine.report.markdown import markdown_table
from engine.stream.outputs import format_drivers, iso_time
from engine.stream.replay import Replay, ReplayOptions
from engine.stream.sources import fleet_source, warm_states
from engine.stream.summary import StreamSummary, format_fraction

__all__ = ["stream_report"]

REPLAY_ROWS = 20_000
HISTORY_STEPS = 600  # 50 hours of every machine before the replay: what its warm start knows
HELD_OUT_SEED = 5


def stream_report(folder, *, seed: int = 0, progress: Callable[[str], None] = print, bundle=None) -> list[Path]:
    """Train the fleet bundle (unless ``bundle``, from :func:`engine.models.fleet_bundle.prepare_fleet_bundle`, is
    given), replay new fleet telemetry through it in C, and write the report; returns the files written (STREAM.md
    first)."""
    folder = Path(folder)
    if bundle is None:
        bundle = prepare_fleet_bundle(folder, seed=seed, progress=progress)
    source = fleet_source(REPLAY_ROWS, seed=seed + 2, history_steps=HISTORY_STEPS)
    initial = warm_states(source.history, bundle.utc_offset_minutes)
    state = folder / "state.json"
    state.unlink(missing_ok=True)  # a new run replays from the start
    options = ReplayOptions()
    replay = Replay(
        bundle,
        source,
        backend="c",
        options=options,
        state_path=state,
        scores_path=folder / "scores.csv",
        alerts_path=folder / "alerts.csv",
        initial_states=initial,
    )
    summary = replay.run()
    progress(
        f"  replayed {summary.session_samples:,} samples in {summary.seconds:.2f} s: "
        + ", ".join(f"{task} {count}" for task, count in summary.alerts.items())
        + " alerts"
    )
    (folder / "summary.json").write_text(json.dumps(summary.to_json(), indent=1) + "\n")
    plot = _plot_machine(folder / "stream.png", replay, source, folder / "scores.csv")
    markdown = folder / "STREAM.md"
    starts = start_comparison(bundle, seed, summary, source)
    for row in starts:
        progress(f"  {row['data']}, {row['start']} start: " + ", ".join(
            f"{q.task} P {format_fraction(q.precision)} R {format_fraction(q.recall)}" for q in row["quality"]
        ))  # fmt: skip
    markdown.write_text(_markdown(summary, replay, bundle, source, seed) + _starts_markdown(starts))
    return [markdown, folder / "summary.json", folder / "alerts.csv", folder / "scores.csv", state, plot]


def start_comparison(bundle, seed: int, warm_summary: StreamSummary, source) -> list[dict]:
    """Alert quality of warm and cold starts: the default replay (``warm_summary`` is its warm run) and a held-out
    fleet seed; a cold start is the same samples through machines with no history."""
    held_out = fleet_source(REPLAY_ROWS, seed=seed + HELD_OUT_SEED, history_steps=HISTORY_STEPS)
    rows = []
    for data, replayed in (
        (f"default replay (seed {seed + 2})", source),
        (f"held-out fleet (seed {seed + HELD_OUT_SEED})", held_out),
    ):
        for start in ("warm", "cold"):
            if replayed is source and start == "warm":
                summary = warm_summary
            else:
                initial = warm_states(replayed.history, bundle.utc_offset_minutes) if start == "warm" else None
                summary = Replay(bundle, replayed, backend="c", initial_states=initial).run()
            days = summary.machines * (replayed.timestamps.max() - replayed.timestamps.min()) / 86_400
            rows.append({"data": data, "start": start, "quality": summary.quality, "machine_days": float(days)})
    return rows


def _starts_markdown(starts: list[dict]) -> str:
    lines = [
        "",
        "## Warm and cold starts",
        "",
        f"A warm start seeds each machine's state from its earlier {HISTORY_STEPS} samples "
        f"({HISTORY_STEPS * 5 / 60:.0f} hours: `warm_states` of the history, the snapshot a backfill's `--states` "
        "holds); a cold start replays the same samples through machines first seen at the replay's start, as a "
        "stream started without `--initial-state`. False alerts: alerts outside every labelled episode, per "
        "machine and day replayed.",
        "",
        *markdown_table(
            ["data", "start", "task", "alerts", "precision", "recall", "false alerts per machine-day"],
            [
                [
                    row["data"],
                    row["start"],
                    q.task,
                    f"{q.alerts:,}",
                    format_fraction(q.precision),
                    format_fraction(q.recall),
                    f"{(q.alerts - q.hits) / row['machine_days']:.3f}",
                ]
                for row in starts
                for q in row["quality"]
            ],
        ),
        "",
    ]
    return "\n".join(lines)


def _markdown(summary: StreamSummary, replay: Replay, bundle, source, seed: int) -> str:
    trained = bundle.trained_on
    lines = [
        "# Streaming replay",
        "",
        f"New fleet telemetry ({source.name}; {source.identity['late_rate']:.1%} of the samples delivered late) "
        "replayed in arrival order through `StreamScorer` on the C edge library, with alerts, a checkpoint and "
        "every score written. The models are LightGBM fitted to fleet telemetry "
        f"({trained['rows']:,} samples of {TRAIN_MACHINES} other machines; {trained['split']}), because the main "
        "bundle learned the Kaggle relations, where rows are independent and only two raw sensors matter.",
        "",
        "| task | validation metric | value | alert threshold |",
        "| --- | --- | --- | --- |",
    ]
    rules = {rule.task: rule for rule in replay.rules}
    for task, entry in trained["validation"].items():
        rule = rules.get(task)
        level = "" if rule is None else (f"≤ {rule.raise_at:g} h" if rule.low else f"≥ {rule.raise_at:.3f}")
        lines.append(f"| {task} | {entry['metric']} | {entry['value']:.4f} | {level} |")
    options = replay.options
    lines += [
        "",
        f"Alerts: raised after {options.raise_after} consecutive samples past the threshold, cleared after "
        f"{options.clear_after} under half of it, none in a machine's first {options.warmup} samples. Precision "
        "and recall count episodes: a labelled episode is a run of positive samples of one machine; an alert is a "
        f"hit inside an episode or up to {options.clear_after} samples after it.",
        "",
        "## Summary",
        "",
        summary.markdown(),
        "",
        "## First alerts",
        "",
        "Drivers: the largest TreeSHAP contributions (LightGBM `pred_contrib`, log-odds; for remaining life, "
        "hours) towards the alert, with the input's value.",
        "",
        "| time | machine | task | score | failure type | remaining life (h) | drivers |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for alert in replay.alerts[:15]:
        lines.append(
            f"| {iso_time(alert.timestamp)} | {alert.machine_id} | {alert.task} | {alert.score:.3f} | "
            f"{alert.failure_type} | {alert.remaining_life:.1f} | {format_drivers(alert.drivers)} |"
        )
    lines += [
        "",
        "![the machine with the most alerts](stream.png)",
        "",
        "Files: [summary.json](summary.json), [alerts.csv](alerts.csv), [scores.csv](scores.csv), "
        "[state.json](state.json) (the final checkpoint), [bundle/bundle.json](bundle/bundle.json).",
        "",
        "Run it again, live, at 600 times real time (a 5-minute tick every half second), resumable:",
        "",
        "```bash",
        f"iotengine stream --bundle {_relative(bundle.path)} --generate fleet --seed {seed + 2} --speed 600 "
        "--state /tmp/stream_state.json",
        "```",
        "",
    ]
    return "\n".join(lines)


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _plot_machine(path: Path, replay: Replay, source, scores_csv: Path) -> Path:
    counts: dict[int, int] = {}
    for alert in replay.alerts:
        counts[alert.machine_id] = counts.get(alert.machine_id, 0) + 1
    machine = max(counts, key=lambda m: (counts[m], -m)) if counts else int(source.machine_ids[0])
    scores = pacsv.read_csv(scores_csv)
    rows = np.flatnonzero(source.machine_ids == machine)
    hours = (source.timestamps[rows] - source.timestamps[0]) / 3600.0
    fig, axes = pyplot().subplots(3, 1, figsize=(11, 8), sharex=True)
    for k, name in enumerate(("temperature", "vibration", "energy_consumption")):
        axes[0].plot(hours, source.sensors[rows, SENSORS.index(name)], lw=0.8, label=name, color=f"C{k}")
    axes[0].set_ylabel("sensor")
    axes[0].legend(loc="upper left", fontsize=8)
    for k, task in enumerate(("anomaly_flag", "maintenance_required", "downtime_risk")):
        values = scores.column(task).to_numpy()[rows]
        axes[1].plot(hours, values, lw=0.8, label=task, color=f"C{k}")
        label = source.labels.get(task)
        if label is not None:
            axes[1].fill_between(
                hours, 0, (label[rows] >= 0.5) * (1.0 - 0.1 * k), step="mid", alpha=0.12, color=f"C{k}"
            )
    axes[1].set_ylabel("probability (shaded: labels)")
    axes[1].legend(loc="upper left", fontsize=8)
    life = scores.column("predicted_remaining_life").to_numpy()[rows]
    axes[2].plot(hours, life, lw=0.8, color="C3", label="predicted")
    if "predicted_remaining_life" in source.labels:
        axes[2].plot(hours, source.labels["predicted_remaining_life"][rows], lw=0.8, color="k", alpha=0.5, label="true")
    axes[2].set_ylabel("remaining life (h)")
    axes[2].set_xlabel("hours since the start of the replay")
    axes[2].legend(loc="upper left", fontsize=8)
    for alert in replay.alerts:
        if alert.machine_id == machine:
            at = (alert.timestamp - source.timestamps[0]) / 3600.0
            for ax in axes:
                ax.axvline(at, color="red", lw=0.8, alpha=0.6)
    axes[0].set_title(f"machine {machine}: {counts.get(machine, 0)} alerts (red lines)")
    save_figure(fig, path)
    return path
