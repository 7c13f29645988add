"""LightGBM models to ONNX: fp32 with onnxmltools (``TreeEnsemble*`` operators), int8 through the GEMM form.

The two exports answer different questions. The fp32 model is what ONNX users deploy: onnxmltools' converter,
LightGBM's trees as one ``TreeEnsembleClassifier`` / ``TreeEnsembleRegressor``, thresholds and inputs in
float32. onnxruntime's quantizer cannot touch those operators, so the int8 model is the tree ensemble rewritten
as tensor operations (:mod:`compile.onnx_gemm`) and then quantized with ``onnxruntime.quantization``.

Both read float32 inputs. A float64 value that lies within float32 rounding of a split threshold can take the
other branch than in LightGBM (which compares doubles): that, not arithmetic, is where fp32 ONNX differs.

Examples
--------
>>> import lightgbm as lgb, numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(300, 4)); y = (X[:, 0] > 0).astype(int)
>>> booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1}, lgb.Dataset(X, y), 10)
>>> model = OnnxModel(lightgbm_onnx(booster).SerializeToString(), "binary")
>>> bool(np.abs(model.predict(X) - booster.predict(X)).max() < 1e-5)
True
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import onnx
import onnxruntime as ort

from compile.errors import CompileError

__all__ = ["ONNX_OPSET", "OnnxModel", "lightgbm_onnx"]

ONNX_OPSET = 15


def lightgbm_onnx(booster: lgb.Booster) -> onnx.ModelProto:
    """onnxmltools' fp32 export of a LightGBM model: input ``input`` float32 (n, features), no ZipMap."""
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    n_features = booster.num_feature()
    model = onnxmltools.convert_lightgbm(
        booster, initial_types=[("input", FloatTensorType([None, n_features]))], zipmap=False, target_opset=ONNX_OPSET
    )
    onnx.checker.check_model(model)
    return model


class OnnxModel:
    """An ONNX model run by onnxruntime on one thread, shaped like the other predictors.

    Parameters
    ----------
    data : bytes
        The serialized model (check its hash before; see :meth:`engine.bundle.format.Bundle.verified_bytes`).
    kind : {"binary", "multiclass", "regression"}
        Output shape: (n,) probability of the positive class, (n, k) class probabilities, or (n,) values.
    name : str, optional
        Named in errors.
    """

    def __init__(self, data: bytes, kind: str, *, name: str = "model.onnx"):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types per failure
            raise CompileError(f"{name}: onnxruntime cannot load it ({exc})") from None
        self.name = name
        self.kind = kind
        inputs = self._session.get_inputs()
        self._input = inputs[0].name
        self.n_features = int(inputs[0].shape[1])
        # onnxmltools' classifiers output (label, probabilities); everything else has one output.
        self._output = self._session.get_outputs()[-1].name
        self.size_bytes = len(data)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Scores of every row of ``X`` (shape (n, k), k >= :attr:`n_features`; NaN = missing), as float64."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] < self.n_features:
            raise CompileError(f"{self.name}: inputs must have shape (n, >={self.n_features}), not {X.shape}")
        X32 = np.ascontiguousarray(X[:, : self.n_features], dtype=np.float32)
        out = np.asarray(self._session.run([self._output], {self._input: X32})[0], dtype=np.float64)
        if self.kind == "multiclass":
            return out
        if self.kind == "binary" and out.shape[1] == 2:
            return out[:, 1].copy()
        return out[:, 0].copy()

    def predict_row(self, x: np.ndarray) -> np.ndarray:
        """One row (shape (k,)) through the same session."""
        return self.predict(np.asarray(x).reshape(1, -1))[0]
