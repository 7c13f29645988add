"""iotengine: a compiled feature and inference engine for industrial IoT telemetry.

The Python API lives in this package: telemetry data (:mod:`engine.data.loading`), the synthetic generator
(:mod:`engine.data.synthetic`), exploratory analysis (:mod:`engine.data.eda`), streaming scoring (:class:`StreamScorer`,
:mod:`engine.stream.scorer`) and the ``iotengine`` command line (:mod:`engine.cli.commands`).
"""

from engine.data.loading import LoadReport, load_telemetry, load_telemetry_with_report, save_telemetry
from engine.data.schema import FAILURE_TYPES, SENSORS, TELEMETRY_SCHEMA
from engine.errors import TelemetryError

__all__ = [
    "FAILURE_TYPES",
    "SENSORS",
    "TELEMETRY_SCHEMA",
    "LoadReport",
    "StreamScorer",
    "TelemetryError",
    "load_telemetry",
    "load_telemetry_with_report",
    "save_telemetry",
]

__version__ = "0.1.0"


def __getattr__(name):
    # StreamScorer pulls in the model libraries; import it only when asked for.
    if name == "StreamScorer":
        from engine.stream.scorer import StreamScorer

        return StreamScorer
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
