"""The backends :meth:`engine.bundle.format.Bundle.predict` runs on and the model sets a bundle holds: plain
names, importable without the model libraries (the command line's parser offers them)."""

from __future__ import annotations

__all__ = ["BACKENDS", "MODEL_SETS"]

BACKENDS = ("lightgbm", "native", "onnx", "onnx-int8", "c")
MODEL_SETS = ("chosen", "lightgbm", "compact")
