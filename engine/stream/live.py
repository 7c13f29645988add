"""Live telemetry from an MQTT broker through the streaming scorer: what ``iotengine stream --mqtt`` runs.

:class:`LiveStream` subscribes to a topic filter (``plant/+/telemetry``) with QoS 1 as an MQTT 5 client with a
persistent session (``clean_start`` off, a session expiry of a week), so the broker queues what is published
while the scorer is away. Messages (engine/stream/messages.py) are scored in micro-batches through the same
:class:`engine.stream.alerting.AlertingScorer` a file replay uses; each alert is published on the alerts topic and
each machine's state retained on its state topic (engine/stream/live_payloads.py). A malformed message is
counted by kind, logged once per kind with its topic, acknowledged, and changes nothing.

Exactly once, with ``--state``. Messages are acknowledged by hand, only once a checkpoint (the feature states,
the alert hysteresis, the counters and the committed length of the ``--scores``/``--alerts`` files) holds their
effect: a scorer killed at any moment restarts from its checkpoint, cuts its files back to it, and the broker
delivers again every message it had not acknowledged, in order, so each is scored once. The one gap, a kill
after the checkpoint and before its acknowledgements reached the broker, is closed by the checkpoint's list of
the messages it holds (packet id and payload digest): the broker redelivers those with the DUP flag, and the
scorer acknowledges them without scoring them again. The same list, kept in memory for the last
:data:`RECEIVE_MAXIMUM` messages, drops the redeliveries that follow a broker restart or a lost connection.
Without ``--state``, messages are acknowledged as soon as they are scored.

Reconnection is paho's: every lost connection is retried with a delay doubling from ``reconnect_min_s`` to
``reconnect_max_s``; the session resumes where it was.
"""

from __future__ import annotations

import hashlib
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.bundle.files import MANIFEST
from engine.bundle.format import Bundle
from engine.errors import InvalidInputError, StreamStateError
from engine.stream.alerting import AlertingScorer, check_alert_settings
from engine.stream.alerts import AlertTracker, alert_rules
from engine.stream.checkpoint import StreamState, read_state, write_state
from engine.stream.live_payloads import alert_payload, state_payload
from engine.stream.live_summary import LiveSummary, latency_percentiles
from engine.stream.messages import MALFORMED_KINDS, MalformedMessage, parse_samples
from engine.stream.mqtt_client import close_client, subscriber_client
from engine.stream.outputs import alert_line, open_outputs, score_lines
from engine.stream.replay import ReplayOptions
from engine.stream.scorer import StreamScorer

__all__ = ["RECEIVE_MAXIMUM", "LiveStream", "MqttSettings"]

RECEIVE_MAXIMUM = 65_535  # MQTT 5's largest in-flight window: messages the broker sends before our acks
COMMIT_AT = 16_384  # unacknowledged messages that force a checkpoint, well inside the window
LIVE_OPTIONS = ReplayOptions(checkpoint_every_s=1.0)  # acknowledgements wait for checkpoints: keep them close


@dataclass(frozen=True)
class MqttSettings:
    """Where the telemetry comes from and where alerts and states go."""

    host: str
    port: int = 1883
    topic: str = "plant/+/telemetry"
    alerts_topic: str = "plant/alerts"
    state_topic: str = "plant/{machine_id}/state"
    client_id: str = "iotengine-scorer"
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 24 * 3600
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    idle_exit_s: float | None = None  # stop after this long without a message (scripts and tests)

    def __post_init__(self):
        if not 0 < self.port < 65536:
            raise InvalidInputError(f"MQTT port must be 1..65535, not {self.port}")
        if "{machine_id}" not in self.state_topic:
            raise InvalidInputError(f"the state topic must contain {{machine_id}}, not {self.state_topic!r}")
        if not self.topic or not self.client_id:
            raise InvalidInputError("the MQTT topic and client id must not be empty")

    @classmethod
    def address(cls, address: str, **settings) -> MqttSettings:
        """``HOST`` or ``HOST:PORT`` (default port 1883)."""
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "1883")
        if not host or not port.isdigit():
            raise InvalidInputError(f"--mqtt takes HOST or HOST:PORT, not {address!r}")
        return cls(host=host, port=int(port), **settings)

    @property
    def identity(self) -> dict:
        """What a checkpoint records: a resume must read the same subscription of the same broker."""
        return {"kind": "mqtt", "host": self.host, "port": self.port, "topic": self.topic, "client_id": self.client_id}


class LiveStream:
    """One scorer process on an MQTT subscription; :meth:`run` until stopped, the limit, or idle."""

    def __init__(
        self,
        bundle,
        settings: MqttSettings,
        *,
        backend: str = "c",
        options: ReplayOptions = LIVE_OPTIONS,
        state_path: str | os.PathLike | None = None,
        scores_path: str | os.PathLike | None = None,
        alerts_path: str | os.PathLike | None = None,
        initial_states: bytes | None = None,
        on_alert: Callable | None = None,
        on_progress: Callable[[int, int, int, int], None] | None = None,
        log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    ):
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        self.settings, self.backend, self.options = settings, backend, options
        self.state_path = None if state_path is None else Path(state_path)
        self.on_alert, self.on_progress, self.log = on_alert, on_progress, log
        detector = self.bundle.unsupervised
        self.rules = alert_rules(
            self.bundle.thresholds, options.rul_hours, None if detector is None else detector["threshold"]
        )
        self._bundle_sha = hashlib.sha256((self.bundle.path / MANIFEST).read_bytes()).hexdigest()
        self.counters = {"messages": 0, "duplicates": 0, "malformed": dict.fromkeys(MALFORMED_KINDS, 0)}
        self.counters["alerts"] = {rule.task: 0 for rule in self.rules}
        delivered: list = []
        state = read_state(self.state_path) if self.state_path and self.state_path.exists() else None
        if state is None:
            if initial_states is None:
                scorer = StreamScorer(self.bundle, backend=backend)
            else:
                scorer = StreamScorer.restore(self.bundle, initial_states, backend=backend)
            tracker = AlertTracker(
                self.rules, raise_after=options.raise_after, clear_after=options.clear_after, warmup=options.warmup
            )
            self.position, committed = 0, {}
        else:
            scorer, tracker, delivered = self._resume(state, scores_path, alerts_path)
            self.position, committed = state.position, state.outputs
        self.resumed_from = self.position
        self.scorer, self.tracker = scorer, tracker
        self._step = AlertingScorer(self.bundle, scorer, tracker)
        self._outputs = open_outputs(
            scores_path, alerts_path, committed, None if state is None else self.position, self.state_path
        )
        # (packet id, payload digest) of the last RECEIVE_MAXIMUM messages handled: a DUP redelivery among them is
        # acknowledged, not scored again. `_unacked` are those whose acknowledgement is not yet sent.
        self._recent: deque = deque(maxlen=RECEIVE_MAXIMUM)
        self._recent_keys: set = set()
        self._unacked: list = []
        for mid, digest in delivered:
            self._remember((int(mid), str(digest)))
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._logged: set[str] = set()
        self.connections = 0
        self._unreachable = False
        self.subscribed = threading.Event()  # set once the broker granted the subscription
        self._client = None

    def _resume(self, state: StreamState, scores_path, alerts_path):
        where = self.state_path
        if state.bundle != self._bundle_sha:
            raise StreamStateError(f"{where}: written with another bundle than {self.bundle.path}")
        if state.source != self.settings.identity:
            raise StreamStateError(
                f"{where}: written for {state.source}, not this subscription ({self.settings.identity})"
            )
        wanted = {name for name, path in (("scores", scores_path), ("alerts", alerts_path)) if path is not None}
        if set(state.outputs) != wanted:
            raise StreamStateError(f"{where}: resume with the same --scores and --alerts files as the checkpoint's")
        opts = self.options
        check_alert_settings(where, state.tracker, self.rules, opts.raise_after, opts.clear_after, opts.warmup)
        try:
            scorer = StreamScorer.restore(self.bundle, state.snapshot, backend=self.backend)
            tracker = AlertTracker.restore(state.tracker)
            live = state.live
            self.counters = {
                "messages": int(live["messages"]),
                "duplicates": int(live["duplicates"]),
                "malformed": {kind: int(live["malformed"][kind]) for kind in MALFORMED_KINDS},
                "alerts": {rule.task: int(live["alerts"][rule.task]) for rule in self.rules},
            }
            delivered = [(int(mid), str(digest)) for mid, digest in live["delivered"]]
        except (InvalidInputError, KeyError, TypeError, ValueError) as exc:
            raise StreamStateError(f"{where}: the checkpoint cannot be restored: {exc}") from exc
        return scorer, tracker, delivered

    # ------------------------------------------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> LiveSummary:
        """Subscribe and score until ``should_stop()``, the options' ``limit`` of samples, or ``idle_exit_s``."""
        self._client = self._connect()
        options, settings = self.options, self.settings
        latencies: list[np.ndarray] = []
        started = last_commit = last_progress = last_message = time.perf_counter()
        interrupted = False
        try:
            while True:
                if should_stop():
                    interrupted = True
                    break
                if options.limit is not None and self.position - self.resumed_from >= options.limit:
                    break
                batch = self._take(options.max_batch)
                now = time.perf_counter()
                if batch:
                    last_message = now
                    received, decided = self._handle(batch)
                    if received.size:
                        latencies.append(decided - received)
                elif settings.idle_exit_s is not None and now - last_message >= settings.idle_exit_s:
                    break
                if self._unacked and (
                    now - last_commit >= options.checkpoint_every_s or len(self._unacked) >= COMMIT_AT
                ):
                    self._commit()
                    last_commit = time.perf_counter()
                if self.on_progress is not None and now - last_progress >= 0.25:
                    self.on_progress(
                        self.position, self.counters["messages"], len(self.scorer.machines), self._alert_count()
                    )
                    last_progress = now
            seconds = time.perf_counter() - started
            self._commit()
        finally:
            self._disconnect()
            for output in self._outputs.values():
                output.close()
        latency = latency_percentiles(np.concatenate(latencies) * 1e6 if latencies else np.empty(0))
        stats = self.scorer.stats
        return LiveSummary(
            broker=f"{settings.host}:{settings.port}",
            topic=settings.topic,
            backend=self.backend,
            models=self.scorer.models,
            resumed_from=self.resumed_from,
            position=self.position,
            messages=self.counters["messages"],
            duplicates=self.counters["duplicates"],
            malformed=dict(self.counters["malformed"]),
            accepted=stats.accepted,
            late=stats.late,
            missing=dict(stats.missing),
            machines=stats.machines,
            alerts=dict(self.counters["alerts"]),
            active_alerts=self.tracker.active(),
            connections=self.connections,
            latency_us=latency,
            seconds=seconds,
            interrupted=interrupted,
        )

    def _take(self, limit: int) -> list:
        """The messages waiting (at most ``limit`` samples' worth of messages), after waiting up to 50 ms for one."""
        try:
            batch = [self._inbox.get(timeout=0.05)]
        except queue.Empty:
            return []
        while len(batch) < limit:
            try:
                batch.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _handle(self, batch: list) -> tuple[np.ndarray, float]:
        """Parse, score and publish one batch of messages; returns each sample's receive time and the decision
        time."""
        rows, received = [], []
        for arrived, message in batch:
            key = (message.mid, hashlib.blake2b(message.payload, digest_size=8).hexdigest())
            if message.dup and key in self._recent_keys:
                self.counters["duplicates"] += 1
                self._acknowledge([key])
                continue
            self._remember(key)
            self.counters["messages"] += 1
            try:
                samples = parse_samples(message.payload)
            except MalformedMessage as bad:
                self.counters["malformed"][bad.kind] += 1
                if bad.kind not in self._logged:
                    self._logged.add(bad.kind)
                    self.log(
                        f"[stream] malformed message on {message.topic} ({bad.detail}); later {bad.kind} messages "
                        "are counted, not logged"
                    )
                continue
            rows.extend(samples)
            received.extend([arrived] * len(samples))
        if not rows:
            self._settle()
            return np.empty(0), 0.0
        columns = list(zip(*rows, strict=True))
        ids = np.array(columns[0], dtype=np.int64)
        timestamps = np.array(columns[1], dtype=np.int64)
        sensors = np.array(columns[2:7], dtype=np.float64).T
        statuses = np.array(columns[7], dtype=np.int64)
        result = self._step.step(self.position, ids, timestamps, sensors, statuses)
        if "scores" in self._outputs:
            self._outputs["scores"].write(score_lines(self.position, ids, timestamps, result.late, result.scores))
        self._publish(ids, timestamps, result)
        self.position += ids.shape[0]
        self._settle()
        return np.asarray(received), result.decided

    def _publish(self, ids, timestamps, result) -> None:
        client, settings = self._client, self.settings
        for alert in result.alerts:
            self.counters["alerts"][alert.task] += 1
            client.publish(settings.alerts_topic, alert_payload(alert), qos=1)
            if self.on_alert is not None:
                self.on_alert(alert)
        if result.alerts and "alerts" in self._outputs:
            self._outputs["alerts"].write("".join(alert_line(a) for a in result.alerts))
        last = {}
        for r, (machine, late) in enumerate(zip(ids.tolist(), result.late.tolist(), strict=True)):
            if not late:
                last[machine] = r
        for machine, r in last.items():
            payload = state_payload(machine, int(timestamps[r]), result.scores, r, self.tracker.active_tasks(machine))
            # QoS 0: a state is superseded by the next one, and QoS 1 would double the packets per batch
            client.publish(settings.state_topic.format(machine_id=machine), payload, qos=0, retain=True)

    def _remember(self, key) -> None:
        if len(self._recent) == self._recent.maxlen:
            self._recent_keys.discard(self._recent[0])
        self._recent.append(key)
        self._recent_keys.add(key)
        self._unacked.append(key)

    def _settle(self) -> None:
        """Without a checkpoint file, a handled message is acknowledged at once."""
        if self.state_path is None:
            self._acknowledge(self._unacked)
            self._unacked = []

    def _acknowledge(self, keys) -> None:
        for mid, _ in keys:
            self._client.ack(mid, 1)

    def _commit(self) -> None:
        """Checkpoint everything handled so far, then acknowledge it."""
        if self.state_path is not None:
            outputs = {name: output.commit() for name, output in self._outputs.items()}
            live = {**self.counters, "delivered": [list(key) for key in self._unacked]}
            write_state(
                self.state_path,
                StreamState(
                    bundle=self._bundle_sha,
                    source=self.settings.identity,
                    position=self.position,
                    snapshot=self.scorer.snapshot(),
                    tracker=self.tracker.state(),
                    outputs=outputs,
                    live=live,
                ),
            )
        self._acknowledge(self._unacked)
        self._unacked = []

    def _alert_count(self) -> int:
        return sum(self.counters["alerts"].values())

    # ------------------------------------------------------------------------------------------------------

    def _connect(self):
        return subscriber_client(
            self.settings,
            RECEIVE_MAXIMUM,
            on_message=lambda _client, _userdata, message: self._inbox.put((time.perf_counter(), message)),
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
            on_subscribe=lambda *_: self.subscribed.set(),
            on_connect_fail=self._on_connect_fail,
        )

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        where = f"{self.settings.host}:{self.settings.port}"
        if reason_code.is_failure:
            self.log(f"[stream] MQTT broker {where} refused the connection: {reason_code}; retrying")
            return
        self.connections += 1
        self._unreachable = False
        client.subscribe(self.settings.topic, qos=1)
        resumed = "session resumed" if flags.session_present else "new session"
        self.log(f"[stream] connected to {where} as {self.settings.client_id} ({resumed}), {self.settings.topic}")

    def _on_connect_fail(self, client, userdata) -> None:
        if not self._unreachable:  # once per outage, not once per retry
            self._unreachable = True
            where = f"{self.settings.host}:{self.settings.port}"
            self.log(f"[stream] cannot reach the MQTT broker {where}; retrying with backoff")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._client is not None:
            self.log(f"[stream] disconnected from the broker ({reason_code}); reconnecting with backoff")

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            close_client(client)
