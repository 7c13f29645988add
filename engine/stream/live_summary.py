"""The summary of a live MQTT stream: messages, samples, malformed messages by kind, alerts, latency."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from engine.report.markdown import markdown_table
from engine.stream.summary import latency_percentiles, latency_table

__all__ = ["LiveSummary", "latency_percentiles"]


@dataclass
class LiveSummary:
    """What a live stream did. Counts cover the whole stream across restarts (a checkpoint carries them); the
    seconds, the connections and the latencies are this run's. Latency is per sample, from the moment its
    message arrived from the broker to the moment its scores were returned and its alerts decided."""

    broker: str
    topic: str
    backend: str
    models: str
    resumed_from: int
    position: int
    messages: int
    duplicates: int
    malformed: dict[str, int]
    accepted: int
    late: int
    missing: dict[str, int]
    machines: int
    alerts: dict[str, int]
    active_alerts: dict[str, int]
    connections: int
    latency_us: dict[str, float]
    seconds: float
    interrupted: bool

    @property
    def session_samples(self) -> int:
        return self.position - self.resumed_from

    @property
    def samples_per_second(self) -> float:
        return self.session_samples / self.seconds if self.seconds > 0 else float("nan")

    def to_json(self) -> dict:
        return {**asdict(self), "session_samples": self.session_samples, "samples_per_second": self.samples_per_second}

    def markdown(self) -> str:
        malformed = sum(self.malformed.values())
        lines = [
            f"- broker {self.broker}, topic `{self.topic}`; backend `{self.backend}`, model set `{self.models}`",
            f"- {'interrupted' if self.interrupted else 'stopped'} at sample {self.position:,}"
            + (f" (resumed at {self.resumed_from:,})" if self.resumed_from else "")
            + f"; {self.connections} connection(s) this run",
            f"- this run: {self.session_samples:,} samples in {self.seconds:.2f} s "
            f"({self.samples_per_second:,.0f} samples/s)",
            f"- messages {self.messages:,}; malformed {malformed:,} ("
            + ", ".join(f"{kind} {count:,}" for kind, count in self.malformed.items())
            + f"); redeliveries dropped {self.duplicates:,}",
            f"- samples scored {self.accepted:,}, late (rejected, spec policy) {self.late:,}, machines {self.machines}",
            "- missing sensor values (scored as missing, spec policy): "
            + ", ".join(f"{name} {count:,}" for name, count in self.missing.items()),
            "",
            *markdown_table(
                ["task", "alerts", "active at the end"],
                [[task, f"{n:,}", f"{self.active_alerts.get(task, 0):,}"] for task, n in self.alerts.items()],
            ),
            "",
            *latency_table(self.latency_us, "latency per sample (broker to alert decision)"),
        ]
        return "\n".join(lines)
