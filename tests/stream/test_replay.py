"""``iotengine stream``: alerts on injected failures and none on quiet machines, checkpoints that resume with
identical scores (after SIGKILL, Ctrl-C, or any cut), hysteresis and alert quality against oracles written
from their definitions, and bad state files refused by name."""

from __future__ import annotations

import calendar
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.bundle.edge import build_edge
from engine.bundle.format import Bundle, TaskModel
from engine.cli.commands import main
from engine.data.loading import load_telemetry, write_kaggle_csv
from engine.data.synthetic import generate
from engine.features.stream import FeatureStream
from engine.models.cross_validation import fit_model
from engine.models.tasks import TASKS, design_matrix, inputs_and_targets
from engine.models.zoo import lightgbm_candidate
from engine.stream.alerts import AlertRule, alert_quality
from engine.stream.replay import Replay, ReplayOptions
from engine.stream.scorer import StreamScorer
from engine.stream.sources import fleet_source
from kernels.hysteresis import empty_state, hysteresis_step
from tests.oracles.hysteresis import hysteresis_oracle

INTERVAL = 60
START = 1_735_689_600  # 2025-01-01 00:00:00 UTC


@pytest.fixture(scope="module")
def kaggle_bundle(tmp_path_factory) -> Bundle:
    """LightGBM on Kaggle-mode data, where anomaly_flag is exactly temperature > 90 or vibration > 80."""
    X, y = inputs_and_targets(generate(20_000, mode="kaggle", seed=3))
    models = {
        task.name: TaskModel(
            task.name,
            "lightgbm",
            fit_model(lightgbm_candidate(task.kind), X, y[task.name]),
            threshold=0.5 if task.kind == "binary" else None,
        )
        for task in TASKS
    }
    folder = tmp_path_factory.mktemp("stream") / "bundle"
    Bundle.write(folder, models)
    return build_edge(folder, progress=lambda _: None)


def _telemetry(tmp_path: Path) -> tuple[Path, dict]:
    """Three machines, 200 one-minute ticks: 1 is quiet, 2 overheats for 30 minutes, 3 has a one-sample spike."""
    rng = np.random.default_rng(11)
    ticks, machines = 200, (1, 2, 3)
    n = ticks * len(machines)
    tick = np.repeat(np.arange(ticks), len(machines))
    machine = np.tile(np.array(machines), ticks)
    temperature = np.round(70.0 + rng.normal(0, 1.5, n), 2)
    vibration = np.round(45.0 + rng.normal(0, 2.0, n), 2)
    hot = (machine == 2) & (tick >= 100) & (tick < 130)
    temperature[hot] = np.round(96.0 + rng.normal(0, 0.5, hot.sum()), 2)
    spike = (machine == 3) & (tick == 60)
    temperature[spike] = 99.0
    anomaly = (temperature > 90) | (vibration > 80)
    table = pa.table(
        {
            "timestamp": pa.array(START + INTERVAL * tick, pa.timestamp("s", tz="UTC")),
            "machine_id": machine,
            "temperature": temperature,
            "vibration": vibration,
            "humidity": np.round(50.0 + rng.normal(0, 1.0, n), 2),
            "pressure": np.round(3.0 + rng.normal(0, 0.05, n), 2),
            "energy_consumption": np.round(2.5 + rng.normal(0, 0.1, n), 2),
            "machine_status": np.ones(n, dtype=np.int8),
            "anomaly_flag": anomaly.astype(np.int8),
            "predicted_remaining_life": np.where(anomaly, 10.0, 300.0),
            "failure_type": np.where(hot, "Overheating", "Normal"),
            "downtime_risk": anomaly.astype(np.float64),
            "maintenance_required": anomaly.astype(np.int8),
        }
    )
    path = write_kaggle_csv(load_telemetry(table), tmp_path / "injected.csv")
    return path, {"hot_start": START + 100 * INTERVAL, "hot_end": START + 129 * INTERVAL}


def test_stream_alerts_on_an_injected_failure_and_not_on_quiet_machines(kaggle_bundle, tmp_path, capsys):
    data, truth = _telemetry(tmp_path)
    alerts_csv, summary_json = tmp_path / "alerts.csv", tmp_path / "summary.json"
    code = main(
        [
            "stream",
            "--bundle",
            str(kaggle_bundle.path),
            "--data",
            str(data),
            "--alerts",
            str(alerts_csv),
            "--summary",
            str(summary_json),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    with alerts_csv.open() as f:
        alerts = list(csv.DictReader(f))
    # Every alert is machine 2's, and the overheating raises exactly one anomaly alert (hysteresis), on its
    # second hot sample (raise_after=2); the quiet machine and the one-sample spike raise nothing.
    assert alerts and {a["machine_id"] for a in alerts} == {"2"}
    anomaly = [a for a in alerts if a["task"] == "anomaly_flag"]
    assert len(anomaly) == 1
    assert anomaly[0]["time"] == time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(truth["hot_start"] + INTERVAL))
    assert float(anomaly[0]["score"]) >= 0.5
    assert anomaly[0]["drivers"].startswith("temperature=9")  # TreeSHAP: temperature drove it
    for alert in alerts:
        at = calendar.timegm(time.strptime(alert["time"], "%Y-%m-%d %H:%M:%SZ"))
        assert truth["hot_start"] <= at <= truth["hot_end"], alert
    assert "ALERT 2025-01-01 01:41:00Z machine 2 anomaly_flag" in out
    summary = json.loads(summary_json.read_text())
    assert summary["session_samples"] == summary["accepted"] == 600
    assert summary["late"] == 0 and summary["machines"] == 3
    quality = {q["task"]: q for q in summary["quality"]}
    # Labelled anomaly episodes: machine 2's overheating and machine 3's spike; only the first is alerted.
    assert quality["anomaly_flag"]["episodes"] == 2
    assert quality["anomaly_flag"]["hits"] == quality["anomaly_flag"]["alerts"] == 1
    assert quality["anomaly_flag"]["precision"] == 1.0 and quality["anomaly_flag"]["recall"] == 0.5
    assert summary["alerts"]["anomaly_flag"] == 1
    assert "| anomaly_flag | 1 |" in out and "latency per sample" in out


def _stream_command(bundle: Bundle, folder: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "engine.cli",
        "stream",
        "--bundle",
        str(bundle.path),
        "--generate",
        "fleet",
        "--rows",
        "8000",
        "--machines",
        "20",
        "--seed",
        "5",
        "--late-rate",
        "0.01",
        "--scores",
        str(folder / "scores.csv"),
        "--alerts",
        str(folder / "alerts.csv"),
        "--summary",
        str(folder / "summary.json"),
        "--quiet",
        *extra,
    ]


def _position(state: Path) -> int:
    try:
        return json.loads(state.read_text())["position"]
    except (OSError, ValueError, KeyError):
        return 0


def _wait_for_checkpoint(process, state: Path, timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        position = _position(state)
        if position > 0:
            return position
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError("no checkpoint was written")


def test_a_stream_killed_mid_way_resumes_with_identical_scores(compiled, tmp_path):
    bundle = compiled[0]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir(), parts.mkdir()
    done = subprocess.run(_stream_command(bundle, whole), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    state = parts / "state.json"
    # 400 ticks of 5 minutes at 12,000 times real time: 10 s, checkpoints every 0.2 s; killed without warning.
    paced = _stream_command(bundle, parts, "--state", str(state), "--speed", "12000", "--checkpoint-every", "0.2")
    process = subprocess.Popen(paced, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(process, state)
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    killed_at = _position(state)
    assert 0 < killed_at < 8000
    # Rows scored after the last checkpoint are in scores.csv; the restart cuts them and scores them again.
    resumed = subprocess.run(
        _stream_command(bundle, parts, "--state", str(state)), capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming generated fleet (8,000 samples, 20 machines, seed 5) at sample {killed_at:,}" in resumed.stdout
    assert (parts / "scores.csv").read_bytes() == (whole / "scores.csv").read_bytes()
    assert (parts / "alerts.csv").read_bytes() == (whole / "alerts.csv").read_bytes()
    lines = (whole / "scores.csv").read_text().splitlines()
    assert len(lines) == 8001 and [int(line.split(",")[0]) for line in lines[1:]] == list(range(8000))
    a, b = (json.loads((f / "summary.json").read_text()) for f in (whole, parts))
    for key in ("accepted", "late", "missing", "machines", "alerts", "quality", "position"):
        assert a[key] == b[key], key
    assert a["late"] > 0 and b["resumed_from"] == killed_at


def test_ctrl_c_stops_cleanly_with_a_summary_and_a_checkpoint(compiled, tmp_path):
    bundle = compiled[0]
    state = tmp_path / "state.json"
    command = _stream_command(bundle, tmp_path, "--state", str(state), "--speed", "3000", "--checkpoint-every", "0.2")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(process, state)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped by a signal at sample" in err and "run the same command again to continue" in err
    assert "| task | alerts |" in out and "interrupted at sample" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] and 0 < summary["position"] < 8000
    assert _position(state) == summary["position"]
    rows = (tmp_path / "scores.csv").read_text().splitlines()
    assert len(rows) == summary["position"] + 1


@settings(max_examples=6, deadline=None)
@given(
    cuts=st.lists(st.integers(1, 1999), min_size=1, max_size=3, unique=True), backend=st.sampled_from(["c", "python"])
)
def test_resuming_at_any_cut_gives_the_uninterrupted_scores(compiled, tmp_path_factory, cuts, backend):
    bundle = compiled[0]
    source = fleet_source(2_000, machines=10, seed=9, late_rate=0.02)
    folder = tmp_path_factory.mktemp("cuts")
    Replay(bundle, source, backend=backend, scores_path=folder / "whole.csv", alerts_path=folder / "wa.csv").run()
    state = folder / "state.json"
    position = 0
    for cut in [*sorted(cuts), source.rows]:
        replay = Replay(
            bundle,
            source,
            backend=backend,
            options=ReplayOptions(limit=cut - position) if cut > position else ReplayOptions(),
            state_path=state,
            scores_path=folder / "parts.csv",
            alerts_path=folder / "pa.csv",
        )
        assert replay.position == position
        summary = replay.run()
        position = summary.position
    assert position == source.rows
    assert (folder / "parts.csv").read_bytes() == (folder / "whole.csv").read_bytes()
    assert (folder / "pa.csv").read_bytes() == (folder / "wa.csv").read_bytes()


def test_a_checkpoint_is_refused_for_other_data_other_models_or_tampered_states(
    compiled, kaggle_bundle, tmp_path, capsys
):
    state = tmp_path / "state.json"
    base = ["stream", "--generate", "fleet", "--rows", "500", "--machines", "5", "--state", str(state), "--quiet"]
    assert main([*base, "--bundle", str(compiled[0].path), "--limit", "200"]) == 0
    capsys.readouterr()
    assert main([*base, "--bundle", str(compiled[0].path), "--seed", "1"]) == 1
    assert "written for another source" in capsys.readouterr().err
    assert main([*base, "--bundle", str(kaggle_bundle.path)]) == 1
    assert "written with another bundle" in capsys.readouterr().err
    assert main([*base, "--bundle", str(compiled[0].path), "--raise-after", "3"]) == 1
    assert "other alert settings" in capsys.readouterr().err
    document = json.loads(state.read_text())
    document["snapshot"] = document["snapshot"][:-8] + "AAAAAAA="
    state.write_text(json.dumps(document))
    assert main([*base, "--bundle", str(compiled[0].path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not match its sha256" in err
    state.write_text("{not json")
    assert main([*base, "--bundle", str(compiled[0].path)]) == 1
    assert "not a readable stream checkpoint" in capsys.readouterr().err


@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 3),
            st.tuples(st.booleans(), st.booleans()),
            st.tuples(st.booleans(), st.booleans()),
            st.booleans(),
        ),
        max_size=300,
    ),
    raise_after=st.integers(1, 4),
    clear_after=st.integers(1, 5),
    warmup=st.integers(0, 5),
    split=st.integers(0, 300),
)
def test_hysteresis_kernel_matches_its_definition_across_batches(rows, raise_after, clear_after, warmup, split):
    slots = np.array([r[0] for r in rows], dtype=np.int64)
    up = np.array([r[1] for r in rows], dtype=bool).reshape(-1, 2)
    down = np.array([r[2] for r in rows], dtype=bool).reshape(-1, 2)
    skip = np.array([r[3] for r in rows], dtype=bool)
    active, run, seen = empty_state(4, 2)
    raised_rows = []
    for lo, hi in ((0, min(split, len(rows))), (min(split, len(rows)), len(rows))):  # two batches, one state
        raised = np.zeros((hi - lo, 2), dtype=bool)
        hysteresis_step(
            slots[lo:hi], up[lo:hi], down[lo:hi], skip[lo:hi], active, run, seen, warmup, raise_after, clear_after,
            raised,
        )  # fmt: skip
        raised_rows += [(int(i) + lo, int(t)) for i, t in zip(*np.nonzero(raised), strict=True)]
    assert raised_rows == hysteresis_oracle(rows, 2, raise_after, clear_after, warmup)


def test_alert_quality_counts_episodes_by_its_definition():
    rule = AlertRule("anomaly_flag", 0.5, 0.25)
    # Machine 7: positives at its samples 2-4 and 6 (one episode: the gap of 1 < clear_after 2), then 12.
    # Machine 8: positives at its samples 0-1. Rows interleave the machines: 7, 8, 7, 8, ...
    labels7 = np.zeros(16)
    labels7[[2, 3, 4, 6, 12]] = 1
    labels8 = np.zeros(16)
    labels8[[0, 1]] = 1
    machine_ids = np.tile([7, 8], 16)
    labels = np.empty(32)
    labels[0::2], labels[1::2] = labels7, labels8
    # Alerts: machine 7 at its sample 3 (hit, episode 1), 8 (6 + clear_after 2: still a hit, episode 1),
    # 9 (false), and machine 8 at its sample 5 (false: 1 + 2 < 5).
    alert_rows = np.array([2 * 3, 2 * 8, 2 * 9, 2 * 5 + 1])
    quality = alert_quality(rule, machine_ids, labels, alert_rows, clear_after=2)
    assert (quality.alerts, quality.hits, quality.episodes, quality.episodes_alerted) == (4, 2, 3, 1)
    assert quality.precision == 0.5 and quality.recall == pytest.approx(1 / 3)


def test_remembered_inputs_are_the_numba_kernels_bits(compiled):
    bundle = compiled[0]
    source = fleet_source(3_000, machines=15, seed=4, late_rate=0.02)
    scorer = StreamScorer(bundle, backend="c")
    stream = FeatureStream(utc_offset_minutes=0)
    for lo in range(0, source.rows, 700):
        hi = min(lo + 700, source.rows)
        args = (source.machine_ids[lo:hi], source.timestamps[lo:hi], source.sensors[lo:hi])
        scorer.score_batch(*args, source.statuses[lo:hi], remember=True)
        expected = design_matrix(stream.update_batch(*args), source.statuses[lo:hi])
        rows = np.arange(0, hi - lo, 7)
        got, want = scorer.last_batch_inputs(rows), expected[rows]
        missing = np.isnan(want)
        assert (np.isnan(got) == missing).all()
        assert (got[~missing].view(np.int64) == want[~missing].view(np.int64)).all()
        late = np.intersect1d(rows, scorer.last_late)
        assert late.size == 0 or np.isnan(got[np.searchsorted(rows, late), :67]).all()
    assert scorer.stats.late == stream.stats.late > 0


def test_status_line_and_progress_reach_a_log(compiled, tmp_path):
    done = subprocess.run(
        _stream_command(compiled[0], tmp_path, "--limit", "3000"),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "[stream] 3,000/8,000 samples" in done.stderr and "samples/s, 20 machines" in done.stderr
    assert "stopped at its limit at sample 3,000 of 8,000" in done.stdout


def test_stream_scores_of_the_real_sample_are_bundle_predict(compiled, real_sample_path, tmp_path):
    # One sample per timestamp: every tick is a single row (StreamScorer's iot_score path).
    bundle = compiled[0]
    scores_csv = tmp_path / "scores.csv"
    code = main(["stream", "--bundle", str(bundle.path), "--data", str(real_sample_path), "--scores", str(scores_csv)])
    assert code == 0
    with scores_csv.open() as f:
        rows = list(csv.DictReader(f))
    expected = bundle.predict(real_sample_path)
    assert len(rows) == 2231 and not any(int(r["late"]) for r in rows)
    for task in ("anomaly_flag", "maintenance_required", "downtime_risk", "predicted_remaining_life"):
        got = np.array([float(r[task]) for r in rows])
        np.testing.assert_allclose(got, expected[task], rtol=0, atol=1e-12, err_msg=task)
    assert [r["failure_type"] for r in rows] == expected["failure_type"].tolist()
    proba = np.array([[float(r[c]) for c in rows[0] if c.startswith("p_")] for r in rows])
    np.testing.assert_allclose(proba, expected["failure_type_proba"], rtol=0, atol=1e-12)


def test_status_line_is_redrawn_on_a_terminal(compiled, tmp_path):
    import fcntl
    import pty
    import select
    import struct
    import termios

    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    process = subprocess.Popen(
        [a for a in _stream_command(compiled[0], tmp_path, "--speed", "20000", "--raise-after", "1") if a != "--quiet"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        close_fds=True,
    )
    os.close(secondary)
    output = b""
    while True:
        ready, _, _ = select.select([primary], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(primary)
    assert process.wait(timeout=60) == 0
    text = output.decode("utf-8", "replace")
    redraws = [part for part in text.split("\r") if " samples/s, 20 machines, " in part]
    assert len(redraws) >= 3  # redrawn in place, several times a second
    assert "ALERT " in text and "| task | alerts |" in text
