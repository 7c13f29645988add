"""The errors of iotengine, all derived from :class:`IotEngineError`.

>>> issubclass(TelemetryError, IotEngineError) and issubclass(CompileError, IotEngineError)
True
"""

from __future__ import annotations

from compile.errors import CompileError, InvalidInputError, IotEngineError

__all__ = [
    "BrokerError",
    "BundleError",
    "CompileError",
    "InvalidInputError",
    "IotEngineError",
    "LateSampleError",
    "MissingExtraError",
    "StreamStateError",
    "TelemetryError",
]


class TelemetryError(IotEngineError, ValueError):
    """Telemetry that cannot be loaded; the message names the source, the column and the first bad row."""


class BundleError(IotEngineError, ValueError):
    """A bundle that is not valid: missing files, a hash that does not match, a manifest for another format."""


class LateSampleError(IotEngineError, ValueError):
    """A sample older than the last accepted sample of its machine (spec: late samples are not applied)."""


class StreamStateError(IotEngineError, ValueError):
    """A checkpoint that cannot be resumed: unreadable, tampered with, or written for other models or data."""


class MissingExtraError(IotEngineError, ImportError):
    """A feature needs a package that only an optional extra of iotengine installs."""


class BrokerError(IotEngineError, RuntimeError):
    """An MQTT broker that cannot be started, reached or subscribed to."""
