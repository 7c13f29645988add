"""iotengine: a compiled feature and inference engine for industrial IoT telemetry.

The public API, importable from here::

    from engine import Bundle, StreamScorer, compute_features, load_telemetry

- telemetry: :func:`load_telemetry` (:mod:`engine.data.loading`), :func:`generate` (:mod:`engine.data.synthetic`);
- features: :func:`compute_features`, :func:`features_table`, :class:`FeatureTransformer` (batch,
  :mod:`engine.features.batch`) and :class:`FeatureStream` (one sample at a time, :mod:`engine.features.stream`);
- models: :func:`train` (:mod:`engine.models.trainer`) writes a :class:`Bundle` (:mod:`engine.bundle.format`),
  whose ``predict`` runs on every backend;
- streaming: :class:`StreamScorer` (:mod:`engine.stream.scorer`);
- errors: every error iotengine raises derives from :class:`IotEngineError` (:mod:`engine.errors`).

Names are loaded on first use, so ``import engine`` stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_WHERE = {
    "Bundle": "engine.bundle.format",
    "TaskModel": "engine.bundle.format",
    "compute_features": "engine.features.batch",
    "features_table": "engine.features.batch",
    "FeatureTransformer": "engine.features.batch",
    "FeatureStream": "engine.features.stream",
    "StreamStats": "engine.features.stream",
    "StreamScorer": "engine.stream.scorer",
    "load_telemetry": "engine.data.loading",
    "load_telemetry_with_report": "engine.data.loading",
    "save_telemetry": "engine.data.loading",
    "write_kaggle_csv": "engine.data.loading",
    "LoadReport": "engine.data.loading",
    "generate": "engine.data.synthetic",
    "train": "engine.models.trainer",
    "FAILURE_TYPES": "engine.data.schema",
    "SENSORS": "engine.data.schema",
    "TELEMETRY_SCHEMA": "engine.data.schema",
    "IotEngineError": "engine.errors",
    "BundleError": "engine.errors",
    "CompileError": "engine.errors",
    "InvalidInputError": "engine.errors",
    "LateSampleError": "engine.errors",
    "StreamStateError": "engine.errors",
    "TelemetryError": "engine.errors",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
