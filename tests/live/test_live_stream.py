"""iotengine stream --mqtt against a real mosquitto: the real sample published as single messages and gateway
arrays, with malformed messages mixed in, gives Bundle.predict's scores bit for bit; alerts and retained machine
states are published; malformed messages are counted by kind, logged once, and change nothing."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from engine.data.schema import FAILURE_TYPES
from engine.errors import InvalidInputError, StreamStateError
from engine.models.autoencoder import SCORE_NAME
from engine.stream.checkpoint import read_state
from engine.stream.live import LiveStream, MqttSettings
from engine.stream.messages import MALFORMED_KINDS
from engine.stream.replay import ReplayOptions
from tests.live.conftest import Collector, Publisher, read_scores, sample_document
from tests.samples import telemetry_arrays

PROBA_COLUMNS = [f"p_{name.lower().replace(' ', '_')}" for name in FAILURE_TYPES]
MALFORMED = {
    "bad_json": b'{"machine_id": 3, "timestamp": ',
    "missing_field": json.dumps({"machine_id": 3, "timestamp": 0}).encode(),
    "wrong_type": None,  # valid samples but for one field: filled in from the data
    "unknown_status": None,
}


def messages_of(ids, stamps, values, statuses):
    """The rows as messages in row order: runs of single samples (epoch seconds) and gateway arrays of 2..9
    samples (ISO 8601), with a malformed message of each kind after every 97th row, cycling through the kinds."""
    rng = np.random.default_rng(5)
    messages, r, bad = [], 0, 0
    while r < ids.shape[0]:
        size = 1 if rng.random() < 0.6 else int(rng.integers(2, 10))
        rows = range(r, min(r + size, ids.shape[0]))
        docs = [sample_document(ids[k], stamps[k], values[k], statuses[k], iso=size > 1) for k in rows]
        topic = f"plant/{ids[r]}/telemetry"
        messages.append((topic, json.dumps(docs[0] if size == 1 else docs).encode()))
        if (r // 97) != ((r + size) // 97):
            kind = MALFORMED_KINDS[bad % len(MALFORMED_KINDS)]
            wrong = {
                "wrong_type": [docs[0], {**docs[0], "machine_id": "three"}],
                "unknown_status": {**docs[0], "machine_status": 9},
            }
            raw = MALFORMED[kind] or json.dumps(wrong[kind]).encode()
            messages.append((topic, raw))
            bad += 1
        r += size
    return messages, bad


def run_live(stream: LiveStream, samples: int):
    result = []
    thread = threading.Thread(target=lambda: result.append(stream.run()), daemon=True)
    thread.start()
    assert stream.subscribed.wait(20), "the scorer never subscribed"
    return thread, result


def test_live_scores_are_bundle_predict_bits_with_alerts_states_and_malformed_messages(
    compiled, real_sample_path, broker, tmp_path
):
    bundle = compiled[0]
    ids, stamps, values, statuses = telemetry_arrays(real_sample_path)
    expected = bundle.predict(real_sample_path)
    messages, bad = messages_of(ids, stamps, values, statuses)
    logs = []
    stream = LiveStream(
        bundle,
        MqttSettings("127.0.0.1", broker.port, client_id="exact"),
        backend="python",
        options=ReplayOptions(checkpoint_every_s=0.2, limit=ids.shape[0]),
        state_path=tmp_path / "state.json",
        scores_path=tmp_path / "scores.csv",
        alerts_path=tmp_path / "alerts.csv",
        log=logs.append,
    )
    alerts = Collector(broker.port, "plant/alerts")
    thread, result = run_live(stream, ids.shape[0])
    publisher = Publisher(broker.port)
    for topic, payload in messages:
        publisher.send(topic, payload)
    publisher.close()
    thread.join(120)
    summary = result[0]

    got = read_scores(tmp_path / "scores.csv")
    assert np.array_equal(got["row"], np.arange(ids.shape[0]))
    assert np.array_equal(got["machine_id"], ids) and np.array_equal(got["timestamp"], stamps)
    assert not got["late"].any()
    for name in ("anomaly_flag", "maintenance_required", "downtime_risk", "predicted_remaining_life", SCORE_NAME):
        assert np.array_equal(got[name].view(np.uint64), expected[name].view(np.uint64)), name
    assert np.array_equal(np.column_stack([got[c] for c in PROBA_COLUMNS]), expected["failure_type_proba"])
    assert (got["failure_type"] == expected["failure_type"]).all()

    assert summary.messages == len(messages) and summary.accepted == ids.shape[0]
    assert summary.malformed == {
        kind: len(range(k, bad, len(MALFORMED_KINDS))) for k, kind in enumerate(MALFORMED_KINDS)
    }
    malformed_logs = [line for line in logs if "malformed message on plant/" in line]
    assert len(malformed_logs) == len(MALFORMED_KINDS)  # once per kind, each naming its topic
    assert all(f"later {kind} messages are counted" in " ".join(malformed_logs) for kind in MALFORMED_KINDS)

    # alerts: as many on the topic as in alerts.csv, each once, each the sample's own scores
    alert_rows = (tmp_path / "alerts.csv").read_text().splitlines()[1:]
    assert sum(summary.alerts.values()) == len(alert_rows) > 0
    deadline_alerts = [doc for _, doc, _ in alerts.messages]
    assert len(deadline_alerts) == len(alert_rows)
    assert len({doc["alert_id"] for doc in deadline_alerts}) == len(alert_rows)
    for doc in deadline_alerts:
        row = np.flatnonzero((ids == doc["machine_id"]) & (stamps == doc["timestamp"]))[0]
        assert doc["score"] == expected[doc["task"]][row]
    alerts.close()

    # retained states: one per machine, its last sample's scores
    states = Collector(broker.port, "plant/+/state")
    deadline = 0
    while len(states.messages) < len(set(ids.tolist())) and deadline < 200:
        threading.Event().wait(0.02)
        deadline += 1
    states.close()
    assert {topic for topic, _, _ in states.messages} == {f"plant/{m}/state" for m in set(ids.tolist())}
    for _topic, doc, retained in states.messages:
        last = np.flatnonzero(ids == doc["machine_id"])[-1]
        assert retained and doc["timestamp"] == stamps[last]
        assert doc["anomaly_flag"] == expected["anomaly_flag"][last]
        assert doc["failure_type"] == expected["failure_type"][last]

    state = read_state(tmp_path / "state.json")
    assert state.position == ids.shape[0] and state.live["messages"] == len(messages)


def test_a_checkpoint_of_another_subscription_or_settings_is_refused(compiled, broker, tmp_path):
    bundle = compiled[0]
    settings = MqttSettings("127.0.0.1", broker.port, client_id="a")
    stream = LiveStream(bundle, settings, options=ReplayOptions(checkpoint_every_s=0.1), state_path=tmp_path / "s.json")
    stream.run(should_stop=lambda: stream.subscribed.is_set())
    with pytest.raises(StreamStateError, match="not this subscription"):
        LiveStream(bundle, MqttSettings("127.0.0.1", broker.port, client_id="b"), state_path=tmp_path / "s.json")
    with pytest.raises(StreamStateError, match="other alert settings"):
        LiveStream(bundle, settings, options=ReplayOptions(raise_after=5), state_path=tmp_path / "s.json")
    with pytest.raises(StreamStateError, match="same --scores and --alerts"):
        LiveStream(bundle, settings, state_path=tmp_path / "s.json", scores_path=tmp_path / "scores.csv")


@pytest.mark.parametrize(
    "address, words",
    [("", "HOST or HOST:PORT"), ("broker:http", "HOST or HOST:PORT"), ("broker:70000", "port must be 1..65535")],
)
def test_bad_broker_addresses_are_named(address, words):
    with pytest.raises(InvalidInputError, match=words):
        MqttSettings.address(address)


def test_the_cli_names_a_bad_broker_address_in_one_line(compiled, capsys):
    from engine.cli.commands import main

    assert main(["stream", "--bundle", str(compiled[0].path), "--mqtt", "broker:http"]) == 1
    assert capsys.readouterr().err.strip() == "iotengine: error: --mqtt takes HOST or HOST:PORT, not 'broker:http'"
    with pytest.raises(SystemExit):  # one source only
        main(["stream", "--bundle", str(compiled[0].path), "--mqtt", "localhost", "--generate", "fleet"])
