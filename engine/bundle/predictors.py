"""The predictor of every model of a bundle's model set in one backend: each model's own library, or the
compiled forms ``iotengine compile`` built (native, iot, ONNX), loaded after their hashes are checked.

Trees must run in the backend asked for; linear and naive Bayes models fall back to numpy only where the backend
has no form of them (native, onnx-int8), and have one in ONNX fp32 whenever skl2onnx made it.
"""

from __future__ import annotations

from compile.native import TREE_FAMILIES
from engine.bundle.choices import BACKENDS
from engine.errors import BundleError, InvalidInputError

__all__ = ["backend_predictors"]


def backend_predictors(bundle, backend: str, models: str = "chosen") -> dict:
    """Task (or sensor, for the ``unsupervised`` set) -> an object with ``predict(X)``."""
    entries = bundle.set_entries(models)
    if models == "chosen":
        own = {task: bundle.model(task) for task in entries}
    else:
        own = {task: bundle.load_set_model(models, task) for task in entries}
    if backend == "lightgbm":
        compiled = {}
    elif backend == "native":
        from engine.bundle.native import native_models

        compiled = native_models(bundle, models)
    elif backend == "iot":
        from engine.bundle.iot import iot_models

        compiled = iot_models(bundle, models)
    elif backend in ("onnx", "onnx-int8"):
        from engine.bundle.onnx import onnx_models

        compiled = onnx_models(bundle, models, "fp32" if backend == "onnx" else "int8")
    elif backend == "c":
        raise InvalidInputError("backend 'c' computes its own features: use predict(table), not predict_inputs")
    else:
        raise InvalidInputError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    needs_export = (
        TREE_FAMILIES if backend != "onnx" else (*TREE_FAMILIES, "logistic_regression", "gaussian_nb", "ridge")
    )
    missing = [
        f"{task} ({entry['family']}{_why_no_export(bundle, backend, models, task)})"
        for task, entry in entries.items()
        if task not in compiled and entry["family"] in needs_export and backend != "lightgbm"
    ]
    if missing:
        hint = "; onnx-int8 covers LightGBM models (try models='lightgbm')" if backend == "onnx-int8" else ""
        raise BundleError(f"{bundle.path}: backend {backend!r} has no {models} model for {', '.join(missing)}{hint}")
    return {**own, **compiled}


def _why_no_export(bundle, backend: str, models: str, task: str) -> str:
    reason = bundle.sklearn_onnx.get(task, {}).get("unavailable")
    return f": {reason}" if backend == "onnx" and models == "chosen" and reason else ""
