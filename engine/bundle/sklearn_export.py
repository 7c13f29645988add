"""The ONNX form of a bundle's chosen scikit-learn models, exported when the bundle is written (the bundle keeps
no estimator to export later; LightGBM models are exported from their text by ``iotengine compile``)."""

from __future__ import annotations

from compile.errors import CompileError
from compile.sklearn_onnx import register_indicator_columns, sklearn_onnx
from engine.models.tasks import INPUT_COLUMNS, STATUS_COLUMN
from engine.models.zoo import StatusOneHot

__all__ = ["sklearn_onnx_exports"]


def sklearn_onnx_exports(models: dict) -> tuple[dict[str, bytes], dict[str, dict]]:
    """skl2onnx's fp32 export of every chosen scikit-learn model, made now: the bundle keeps no estimator to
    export later. Returns the files and, per task, the file and its size or why there is none."""
    register_indicator_columns(StatusOneHot, STATUS_COLUMN, 3)
    files: dict[str, bytes] = {}
    section: dict[str, dict] = {}
    for name, model in models.items():
        if model.family == "lightgbm":  # exported from its model text by `iotengine compile`
            continue
        width = len(INPUT_COLUMNS) if model.columns is None else len(model.columns)
        try:
            data = sklearn_onnx(model.estimator, width).SerializeToString()
        except CompileError as exc:  # SklearnOnnxUnavailable, or skl2onnx failing: the bundle says why
            section[name] = {"unavailable": str(exc)}
            continue
        relative = f"onnx/chosen/{name}.fp32.onnx"
        files[relative] = data
        section[name] = {"fp32": relative, "fp32_bytes": len(data)}
    return files, section
