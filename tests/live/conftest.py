"""A real mosquitto per test (engine.stream.broker.LocalBroker: persistence on, in the test's folder), and a
publisher that sends telemetry as a gateway would: QoS 1, a persistent session, every message acknowledged."""

from __future__ import annotations

import csv
import json
import threading
import time

import numpy as np
import pytest

from engine.stream.broker import LocalBroker


@pytest.fixture
def broker(tmp_path):
    with LocalBroker(tmp_path / "broker") as running:
        yield running


class Publisher:
    """A paho client with a persistent session; :meth:`send` publishes with QoS 1 and :meth:`wait` blocks until
    the broker has acknowledged everything (across broker restarts)."""

    def __init__(self, port: int, client_id: str = "test-gateway"):
        from paho.mqtt.client import Client, MQTTv5
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.client = Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTv5)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(0.2, 1.0)
        self._pending: set[int] = set()
        self._early: set[int] = set()
        self._lock = threading.Lock()
        self.client.on_publish = self._acknowledged
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=False, properties=properties)
        self.client.loop_start()

    def _acknowledged(self, client, userdata, mid, reason_code, properties):
        with self._lock:  # an acknowledgement may come before send() has recorded its mid
            if mid in self._pending:
                self._pending.discard(mid)
            else:
                self._early.add(mid)

    def send(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)  # not under the lock: it waits for the network thread
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
            else:
                self._pending.add(info.mid)

    def wait(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not self._pending, f"{len(self._pending)} messages were never acknowledged by the broker"

    def close(self) -> None:
        self.wait()
        self.client.disconnect()
        self.client.loop_stop()


class Collector:
    """Subscribes to a topic filter and keeps every message (retained ones included)."""

    def __init__(self, port: int, topic: str):
        from paho.mqtt.client import Client, MQTTv5
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list = []
        self.ready = threading.Event()
        self.client = Client(CallbackAPIVersion.VERSION2, protocol=MQTTv5)
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, json.loads(m.payload), m.retain))
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        assert self.ready.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def sample_document(machine_id, timestamp, values, status, *, iso: bool) -> dict:
    """One sample in the documented schema; NaN sensors as null, the timestamp as ISO 8601 text or epoch seconds."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(timestamp))) if iso else int(timestamp)
    names = ("temperature", "vibration", "humidity", "pressure", "energy_consumption")
    document = {"machine_id": int(machine_id), "timestamp": stamp, "machine_status": int(status)}
    for name, value in zip(names, values, strict=True):
        document[name] = None if np.isnan(value) else float(value)
    return document


def read_scores(path) -> dict[str, np.ndarray]:
    """scores.csv as arrays: floats parsed from their repr (exact), names as strings."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = {}
    for name in rows[0] if rows else ():
        values = [row[name] for row in rows]
        if name == "failure_type":
            columns[name] = np.array(values, dtype=object)
        elif name in ("row", "machine_id", "timestamp", "late"):
            columns[name] = np.array([int(v) for v in values], dtype=np.int64)
        else:
            columns[name] = np.array([float(v) for v in values], dtype=np.float64)
    return columns
