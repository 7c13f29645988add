"""The backends :meth:`engine.bundle.format.Bundle.predict` runs on and the model sets a bundle holds: plain
names, importable without the model libraries (the command line's parser offers them)."""

from __future__ import annotations

__all__ = ["BACKENDS", "EDGE_TREE_FORMS", "MODEL_SETS"]

BACKENDS = ("lightgbm", "native", "iot", "onnx", "onnx-int8", "c")
# compile.edge_models.TREE_FORMS, which tests/cli checks this against.
EDGE_TREE_FORMS = ("tl2cgen", "uint8", "iot")
MODEL_SETS = ("chosen", "lightgbm", "compact")
