"""Nothing lost, nothing scored twice: `iotengine stream --mqtt --state` (a subprocess, the C library) while
fleet telemetry is published, through a broker restart and two SIGKILLs of the scorer, ends with every
published sample scored once, in publish order, with Bundle.predict's scores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from engine.data.synthetic import FLEET_INTERVAL_S, generate
from engine.stream.checkpoint import read_state
from tests.live.conftest import Publisher, read_scores, sample_document
from tests.oracles.scores import assert_scores_close
from tests.oracles.ulp import TOLERANCE
from tests.samples import telemetry_arrays

SAMPLES = 9_000


def scorer(bundle, port, folder):
    command = [
        sys.executable, "-m", "engine.cli", "stream", "--bundle", str(bundle.path), "--mqtt", f"127.0.0.1:{port}",
        "--client-id", "restarts", "--state", str(folder / "state.json"), "--scores", str(folder / "scores.csv"),
        "--alerts", str(folder / "alerts.csv"), "--checkpoint-every", "0.3", "--quiet",
    ]  # fmt: skip
    with (folder / "scorer.log").open("a") as log:  # the child keeps its own descriptor
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def scored_rows(folder) -> int:
    path = folder / "scores.csv"
    return max(0, path.read_bytes().count(b"\n") - 1) if path.exists() else 0


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_broker_restart_and_killed_scorers_lose_and_repeat_nothing(compiled, broker, tmp_path):
    bundle = compiled[0]
    table = generate(SAMPLES, machines=30, mode="fleet", seed=41, interval_s=FLEET_INTERVAL_S)
    ids, stamps, values, statuses = telemetry_arrays(table)
    process = scorer(bundle, broker.port, tmp_path)
    wait_for(lambda: b"connected to" in (tmp_path / "scorer.log").read_bytes(), 120, "the scorer never connected")
    time.sleep(0.5)  # the subscription: from here on the broker keeps the session's messages
    publisher = Publisher(broker.port)
    log = tmp_path / "scorer.log"
    # each event waits until the scorer has caught up to near it, so it lands mid-stream, not in a backlog
    events = {2_000: ("broker", 0), 4_500: ("kill", 1), 7_000: ("kill", 2)}
    for r in range(SAMPLES):
        doc = sample_document(ids[r], stamps[r], values[r], statuses[r], iso=r % 2 == 0)
        publisher.send(f"plant/{ids[r]}/telemetry", json.dumps(doc).encode())
        if r % 100 == 0:
            time.sleep(0.01)
        if r not in events:
            continue
        event, resumed = events[r]
        wait_for(lambda: log.read_bytes().count(b"session resumed") >= resumed, 60, "no reconnection")  # noqa: B023
        wait_for(lambda: scored_rows(tmp_path) >= r - 300, 60, "the scorer fell behind")  # noqa: B023
        if event == "broker":
            broker.restart(down_s=1.0)
        else:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            process = scorer(bundle, broker.port, tmp_path)
    publisher.close()
    wait_for(lambda: read_state(tmp_path / "state.json").position >= SAMPLES, 180, "not every sample was scored")
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0, (tmp_path / "scorer.log").read_text()[-3000:]

    assert log.read_text().count("session resumed") >= 3  # after the broker restart and after each kill
    got = read_scores(tmp_path / "scores.csv")
    assert np.array_equal(got["row"], np.arange(SAMPLES))  # each once
    assert np.array_equal(got["machine_id"], ids) and np.array_equal(got["timestamp"], stamps)  # in publish order
    assert not got["late"].any()
    expected = {name: column for name, column in bundle.predict(table).items() if name in got or name.endswith("proba")}
    got["failure_type_proba"] = np.column_stack([got[c] for c in got if c.startswith("p_")])
    assert_scores_close(got, expected, TOLERANCE)
    state = read_state(tmp_path / "state.json")
    assert state.position == SAMPLES and state.live["messages"] == SAMPLES
