"""The backends :meth:`engine.bundle.format.Bundle.predict` runs on and the model sets a bundle holds: plain
names, importable without the model libraries (the command line's parser offers them)."""

from __future__ import annotations

__all__ = ["BACKENDS", "EDGE_TARGETS", "EDGE_TREE_FORMS", "MODEL_SETS"]

BACKENDS = ("lightgbm", "native", "iot", "onnx", "onnx-int8", "c")
# compile.edge_models.TREE_FORMS, which tests/cli checks this against.
EDGE_TREE_FORMS = ("tl2cgen", "uint8", "iot")
# compile.edge_targets.TARGET_NAMES (tests/cli checks it too).
EDGE_TARGETS = ("host", "cortex-m0plus", "cortex-m4f", "cortex-m7")
MODEL_SETS = ("chosen", "lightgbm", "compact")
