"""End-to-end load of the live MQTT path: fleet telemetry published to a broker, scored by ``iotengine stream
--mqtt`` in its own process, every sample's latency measured from its publish to its machine's state coming back.

One run (:func:`measure_load`):

1. a scorer process, ``iotengine stream --mqtt ... --state ... --quiet`` (the C library, checkpoints and the
   acknowledgements after them, exactly as deployed);
2. a publisher (QoS 1, persistent session) sends ``rows`` fleet samples, one per message or ``batch`` per gateway
   array; payloads are encoded before the clock starts (the gateway's work, not the scorer's);
3. an observer, in the publisher's process and on its clock, subscribes to the retained machine states: the
   state the scorer publishes after each batch closes every sample of that machine up to its timestamp, so each
   sample's latency is publish -> broker -> scorer (features, five tasks, alerts) -> broker -> observer;
4. once every sample is closed the scorer is stopped (SIGTERM: it checkpoints) and its summary read: samples
   scored, messages, redeliveries dropped; ``lost`` is what was published and never scored.

Two kinds of run: capacity (everything published into the stopped scorer's session, then drained: samples/s with
no publisher competing for the cores) and latency (published at a fixed rate to the running scorer).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine.data.schema import SENSORS
from engine.data.synthetic import FLEET_INTERVAL_S, generate
from engine.errors import BrokerError
from engine.stream.summary import latency_percentiles

__all__ = ["LoadResult", "fleet_arrays", "fleet_messages", "measure_load"]


@dataclass(frozen=True)
class LoadResult:
    mode: str
    samples: int
    messages: int
    seconds: float
    scored: int
    lost: int
    duplicates: int
    latency_us: dict[str, float]
    scorer_latency_us: dict[str, float]

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds

    def to_json(self) -> dict:
        return {
            **asdict(self),
            "samples_per_second": self.samples_per_second,
            "messages_per_second": self.messages_per_second,
        }


def fleet_arrays(rows: int, machines: int, seed: int = 0):
    """New fleet telemetry in time order: machine ids, timestamps, sensors (n, 5) and statuses."""
    table = generate(rows, machines=machines, mode="fleet", seed=seed, interval_s=FLEET_INTERVAL_S)
    ids = table.column("machine_id").to_numpy().astype(np.int64)
    stamps = table.column("timestamp").cast("int64").to_numpy()
    values = np.column_stack([table.column(name).to_numpy() for name in SENSORS])
    return ids, stamps, values, table.column("machine_status").to_numpy().astype(np.int64)


def fleet_messages(rows: int, machines: int, batch: int, seed: int = 0):
    """:func:`fleet_arrays` as (topic, payload) in time order, ``batch`` samples per message, and its (machine id,
    timestamp) per sample."""
    ids, stamps, values, statuses = fleet_arrays(rows, machines, seed)
    names = SENSORS
    docs = []
    for r in range(ids.shape[0]):
        doc = {"machine_id": int(ids[r]), "timestamp": int(stamps[r]), "machine_status": int(statuses[r])}
        for k, name in enumerate(names):
            doc[name] = None if np.isnan(values[r, k]) else float(values[r, k])
        docs.append(doc)
    if batch == 1:
        messages = [(f"plant/{d['machine_id']}/telemetry", json.dumps(d).encode()) for d in docs]
    else:
        messages = [
            (f"plant/gateway-{k // batch % 8}/telemetry", json.dumps(docs[k : k + batch]).encode())
            for k in range(0, len(docs), batch)
        ]
    return messages, ids, stamps


def measure_load(
    bundle_path,
    broker,
    folder,
    *,
    rows: int,
    machines: int = 50,
    batch: int = 1,
    rate: float | None = None,
    seed: int = 0,
    timeout_s: float = 300.0,
    scores: bool = False,
) -> LoadResult:
    """One load run against ``broker`` (an :class:`engine.stream.broker.LocalBroker`), the scorer's files in
    ``folder`` (with ``scores``, its ``--scores folder/scores.csv`` too).

    Without ``rate`` it measures capacity: the scorer subscribes and stops, everything is published into its
    persistent session, and the scorer is started again to drain it, so the publisher takes no core from it;
    samples/s runs from the first sample closed to the last. With ``rate`` the samples are published at that pace
    to the running scorer, and latency is what a plant at that rate sees."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    messages, ids, stamps = fleet_messages(rows, machines, batch, seed)
    tag = f"load-{batch}-{int(time.time() * 1000) % 10**8}"
    for name in ("state.json", "summary.json", "scorer.log", "scores.csv"):
        (folder / name).unlink(missing_ok=True)
    scorer = _start_scorer(bundle_path, broker, folder, tag, scores)
    observer = _Observer(broker, tag, ids, stamps)
    try:
        if rate is None:
            _stop_scorer(scorer, folder)  # its session now queues what is published
            scorer = None
        publisher = _client(broker, f"{tag}-gateway", persistent=True)
        acked = threading.Semaphore(0)
        publisher.on_publish = lambda *_: acked.release()
        started = time.perf_counter()
        r = 0
        for topic, payload in messages:
            if rate is not None:
                delay = started + r / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            observer.published(r, min(r + batch, ids.shape[0]))
            publisher.publish(topic, payload, qos=1)
            r += batch
        for _ in messages:  # the broker holds every message
            if not acked.acquire(timeout=timeout_s):
                raise BrokerError("the broker did not acknowledge every published message")
        if scorer is None:
            scorer = _start_scorer(bundle_path, broker, folder, tag, scores)
        if not observer.done.wait(timeout_s):
            raise BrokerError(
                f"only {len(observer.closed):,} of {ids.shape[0]:,} samples came back in {timeout_s:.0f} s"
            )
        publisher.disconnect()
        publisher.loop_stop()
    finally:
        observer.close()
        summary = _stop_scorer(scorer, folder) if scorer is not None else None
    closed = np.asarray(observer.closed)
    if rate is None:  # from the first sample closed: the scorer's start-up is not its throughput
        first = observer.first_closed_at
        seconds = observer.last_closed_at - first
        samples = int(np.count_nonzero(np.asarray(observer.closed_at) > first))
    else:
        seconds, samples = observer.last_closed_at - started, int(ids.shape[0])
    return LoadResult(
        mode=("single samples" if batch == 1 else f"arrays of {batch} samples")
        + (", drained from the broker" if rate is None else f", published at {rate:,.0f} samples/s"),
        samples=samples,
        messages=round(len(messages) * samples / ids.shape[0]),
        seconds=seconds,
        scored=int(summary["accepted"]),
        lost=int(ids.shape[0] - summary["position"]),
        duplicates=int(summary["duplicates"]),
        latency_us=latency_percentiles(closed * 1e6) if rate is not None else {},
        scorer_latency_us=summary["latency_us"],
    )


class _Observer:
    """Subscribes to the retained machine states: each closes every published sample of its machine up to its
    timestamp."""

    def __init__(self, broker, tag: str, ids, stamps):
        self._ids, self._stamps = ids, stamps
        self._open: dict[int, deque] = {int(m): deque() for m in np.unique(ids)}
        self.closed: list[float] = []
        self.closed_at: list[float] = []
        self.first_closed_at = self.last_closed_at = float("nan")
        self.done = threading.Event()
        subscribed = threading.Event()
        self.client = _client(broker, f"{tag}-observer", persistent=False)
        self.client.on_message = self._on_state
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.subscribe("plant/+/state", qos=0)
        if not subscribed.wait(10):
            raise BrokerError("the load observer could not subscribe")
        time.sleep(0.3)  # retained states of an earlier run arrive first; they close nothing of this one

    def published(self, start: int, stop: int) -> None:
        now = time.perf_counter()
        for s in range(start, stop):
            self._open[int(self._ids[s])].append((int(self._stamps[s]), now))

    def _on_state(self, client, userdata, message) -> None:
        now = time.perf_counter()
        doc = json.loads(message.payload)
        waiting = self._open.get(doc["machine_id"])
        closed = 0
        while waiting and waiting[0][0] <= doc["timestamp"]:
            self.closed.append(now - waiting.popleft()[1])
            closed += 1
        if closed:
            if not self.closed_at:
                self.first_closed_at = now
            self.closed_at.extend([now] * closed)
            self.last_closed_at = now
        if len(self.closed) >= self._ids.shape[0]:
            self.done.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _client(broker, client_id: str, *, persistent: bool):
    from paho.mqtt.client import Client, MQTTv5
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client = Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTv5)
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600 if persistent else 0
    client.connect("127.0.0.1", broker.port, clean_start=not persistent, properties=properties)
    client.loop_start()
    return client


def _start_scorer(bundle_path, broker, folder: Path, tag: str, scores: bool) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "engine.cli", "stream", "--bundle", str(bundle_path), "--mqtt", broker.address,
        "--client-id", tag, "--state", str(folder / "state.json"), "--summary", str(folder / "summary.json"),
        "--quiet", *(["--scores", str(folder / "scores.csv")] if scores else []),
    ]  # fmt: skip
    with (folder / "scorer.log").open("a") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    before = (folder / "scorer.log").read_bytes().count(b"connected to")
    while (folder / "scorer.log").read_bytes().count(b"connected to") == before:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise BrokerError(f"the scorer did not connect: {(folder / 'scorer.log').read_text()[-2000:]}")
        time.sleep(0.05)
    time.sleep(0.5)  # its subscription
    return process


def _stop_scorer(process: subprocess.Popen, folder: Path) -> dict:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    path = folder / "summary.json"
    if process.returncode != 0 or not path.exists():
        raise BrokerError(f"the scorer failed: {(folder / 'scorer.log').read_text()[-2000:]}")
    return json.loads(path.read_text())
