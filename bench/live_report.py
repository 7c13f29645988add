"""The main job's live MQTT stage: a local mosquitto, the fleet bundle's scorer in its own process
(``iotengine stream --mqtt --state``), fleet telemetry published as single samples and as gateway arrays.

Writes into its folder::

    LIVE.md        exactness (the live scores against the same samples scored by StreamScorer in one call),
                   samples/s and messages/s end to end, latency per sample, what was lost
    load.json      the runs' figures
    latency.png    latency percentiles per run

and returns its figures; without mosquitto it writes LIVE.md saying so.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from bench.mqtt_load import fleet_arrays, measure_load
from engine.report.figures import pyplot, save_figure
from engine.report.markdown import markdown_table
from engine.stream.broker import LocalBroker, find_mosquitto
from engine.stream.scorer import StreamScorer

__all__ = ["latency_chart", "live_report", "load_table"]

PACED_SHARE = 0.5  # the latency runs publish at half the measured capacity
SCORED_COLUMNS = ("anomaly_flag", "maintenance_required", "downtime_risk", "predicted_remaining_life")


def live_report(
    folder, bundle_path, *, rows: int = 20_000, batch: int = 100, progress=print, stream_markdown: Path | None = None
) -> dict:
    """Run the load and write the report; with ``stream_markdown`` (the replay's STREAM.md) its table is appended
    there too, as the section "Live over MQTT"."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if find_mosquitto() is None:
        (folder / "LIVE.md").write_text(
            "# Live stream over MQTT\n\nNot run: mosquitto is not installed (Debian: `apt-get install mosquitto`).\n"
        )
        return {"files": [folder / "LIVE.md"], "missing": "mosquitto is not installed", "runs": []}
    results = []
    with LocalBroker(folder / "broker") as broker:
        for size in (1, batch):
            capacity = measure_load(
                bundle_path, broker, folder / f"drain-{size}", rows=rows, batch=size, scores=size == 1
            )
            rate = max(100.0, round(capacity.samples_per_second * PACED_SHARE, -2))
            paced = measure_load(bundle_path, broker, folder / f"paced-{size}", rows=rows, batch=size, rate=rate)
            for result in (capacity, paced):
                progress(f"  live, {result.mode}: {_line(result)}")
            results += [capacity, paced]
    identical = _identical_to_one_call(bundle_path, folder / "drain-1" / "scores.csv", rows)
    chart = latency_chart(results, folder / "latency.png")
    (folder / "load.json").write_text(json.dumps([r.to_json() for r in results], indent=1) + "\n")
    lines = [
        "# Live stream over MQTT",
        "",
        f"`iotengine stream --mqtt` in its own process (the fleet bundle's C library, `--state`: acknowledgements "
        f"after checkpoints) against a local mosquitto; {rows:,} new fleet samples published with QoS 1 as single "
        f"samples and as gateway arrays of {batch}. Capacity: everything published into the stopped scorer's "
        "persistent session, then drained (no publisher competing for the cores). Latency: published at half "
        "that rate to the running scorer, from the publish to the machine's retained state coming back (broker, "
        "scorer, broker). Measured with "
        "`python scripts/mqtt_load.py` (bench/mqtt_load.py) on this machine, publisher, broker and scorer sharing "
        "its cores.",
        "",
        *load_table(results),
        "",
        f"Live scores identical (bit for bit) to the same samples scored by `StreamScorer.score_batch` in one call: "
        f"{'yes' if identical else 'NO'}.",
        "",
        "![latency per sample](latency.png)",
        "",
        "Files: [load.json](load.json).",
    ]
    (folder / "LIVE.md").write_text("\n".join(lines) + "\n")
    if stream_markdown is not None and stream_markdown.exists():
        link = folder.relative_to(stream_markdown.parent) / "LIVE.md"
        section = ["", "## Live over MQTT", "", f"From [{link}]({link}):", "", *lines[4:-4]]
        stream_markdown.write_text(stream_markdown.read_text().rstrip("\n") + "\n" + "\n".join(section) + "\n")
    return {
        "files": [folder / "LIVE.md", folder / "load.json", chart],
        "missing": None,
        "runs": results,
        "identical": identical,
    }


def _line(r) -> str:
    latency = (
        f", p50 {r.latency_us['p50'] / 1e3:,.1f} ms, p99 {r.latency_us['p99'] / 1e3:,.1f} ms" if r.latency_us else ""
    )
    return f"{r.samples_per_second:,.0f} samples/s, {r.messages_per_second:,.0f} messages/s{latency}, lost {r.lost}"


def load_table(results) -> list[str]:
    rows = [
        [
            r.mode,
            f"{r.samples:,}",
            f"{r.messages:,}",
            f"{r.samples_per_second:,.0f}",
            f"{r.messages_per_second:,.0f}",
            f"{r.latency_us['p50'] / 1e3:,.1f}" if r.latency_us else "",
            f"{r.latency_us['p99'] / 1e3:,.1f}" if r.latency_us else "",
            f"{r.scorer_latency_us.get('p99', float('nan')) / 1e3:,.2f}",
            f"{r.lost:,}",
            f"{r.duplicates:,}",
        ]
        for r in results
    ]
    header = [
        "messages", "samples", "messages sent", "samples/s", "messages/s", "p50 ms", "p99 ms",
        "p99 ms in the scorer", "lost", "redeliveries dropped",
    ]  # fmt: skip
    return markdown_table(header, rows)


def latency_chart(results, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = ("p50", "p90", "p99", "p99.9", "max")
    for r in results:
        if not r.latency_us:
            continue
        ax.plot(
            names,
            [r.latency_us[k] / 1e3 for k in names],
            marker="o",
            label=f"{r.mode}: {r.samples_per_second:,.0f} samples/s",
        )
    ax.set_yscale("log")
    ax.set_ylabel("ms, publish to the machine's state")
    ax.set_title("iotengine stream --mqtt: latency per sample, end to end")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _identical_to_one_call(bundle_path, scores_path: Path, rows: int) -> bool:
    """The live scores.csv against StreamScorer.score_batch of the same samples in publish order (the C library
    the scorer uses, whose agreement with Bundle.predict tests/stream checks)."""
    ids, stamps, values, statuses = fleet_arrays(rows, 50)
    expected = StreamScorer(bundle_path).score_batch(ids, stamps, values, statuses)
    with scores_path.open(newline="") as f:
        got = list(csv.DictReader(f))
    if len(got) != ids.shape[0]:
        return False
    for name in SCORED_COLUMNS:
        column = np.array([float(row[name]) for row in got])
        if not np.array_equal(column.view(np.uint64), np.asarray(expected[name]).view(np.uint64)):
            return False
    return [int(row["machine_id"]) for row in got] == ids.tolist()
