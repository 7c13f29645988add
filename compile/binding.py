"""cffi binding to a native tree library built by :mod:`compile.native`.

One :class:`NativeModel` per library: the ``.so`` is hashed and checked against the sha256 its bundle recorded
*before* it is opened (a corrupted or foreign library is never loaded), opened once, and every call's status
is checked. :meth:`NativeModel.predict` passes the caller's float64 array to C without copying it (any
C-contiguous (n, k) array with k >= the model's features; other layouts are copied once); cffi releases the
GIL for the duration of the call, so large batches do not block other Python threads.

The output transform is the one the model file names (LightGBM's sigmoid and softmax, forests' averaging), done
by tl2cgen's C code in double precision; ``raw=True`` returns margins.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from cffi import FFI
from scipy.special import expit, softmax

from compile.errors import CompileError

__all__ = ["NativeModel", "open_verified_library"]

_CDEF = """
int32_t get_num_feature(void);
int32_t iot_num_outputs(void);
int iot_predict(const double *X, int64_t n_rows, int64_t row_stride, int pred_margin, double *out);
"""


def open_verified_library(path: Path, sha256: str | None, cdef: str, what: str):
    """``(ffi, lib)`` of a shared library whose bytes match ``sha256`` (checked before it is loaded; None only for
    a library the caller has just built itself). Failures raise CompileError naming the file and ``what`` it is."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CompileError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise CompileError(f"{path}: sha256 differs from the bundle's record; refusing to load it")
    ffi = FFI()
    ffi.cdef(cdef)
    try:
        lib = ffi.dlopen(str(path.resolve()))
    except OSError as exc:
        raise CompileError(f"{path}: cannot load the {what} ({exc})") from None
    return ffi, lib


class NativeModel:
    """A native tree library, loaded once.

    Parameters
    ----------
    path : path
        The shared library.
    sha256 : str
        Its expected sha256; a library whose bytes differ is refused before it is loaded.
    kind : {"binary", "multiclass", "regression"}
        Shapes the output like :mod:`engine.models.model_files` predictors: (n,) for binary and regression,
        (n, k) for multiclass.
    """

    def __init__(self, path: str | os.PathLike, sha256: str, kind: str, *, link_in_numpy: bool = False):
        path = Path(path)
        self._ffi, self._lib = open_verified_library(path, sha256, _CDEF, "native library")
        self.path = path
        self.kind = kind
        # scikit-learn's HistGradientBoosting: treelite's C transform is not scikit-learn's, so take the margin
        # and apply scikit-learn's link (expit, softmax) in float64 here.
        self.link_in_numpy = link_in_numpy
        self.n_features = int(self._lib.get_num_feature())
        self.n_outputs = int(self._lib.iot_num_outputs())

    def predict(self, X: np.ndarray, *, raw: bool = False) -> np.ndarray:
        """Scores of every row of ``X`` (shape (n, k), k >= :attr:`n_features`; NaN = missing)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] < self.n_features:
            raise CompileError(f"{self.path.name}: inputs must have shape (n, >={self.n_features}), not {X.shape}")
        if X.dtype != np.float64 or not X.flags.c_contiguous:
            X = np.ascontiguousarray(X, dtype=np.float64)
        out = np.empty((X.shape[0], self.n_outputs))
        margin = raw or self.link_in_numpy
        status = self._lib.iot_predict(
            self._ffi.from_buffer("double[]", X),
            X.shape[0],
            X.shape[1],
            1 if margin else 0,
            self._ffi.from_buffer("double[]", out),
        )
        if status != 0:
            raise CompileError(f"{self.path.name}: iot_predict returned {status}")
        if self.link_in_numpy and not raw and self.kind != "regression":
            out = expit(out) if self.kind == "binary" else softmax(out, axis=1)
        return self._shape(out, raw)

    def predict_row(self, x: np.ndarray, *, raw: bool = False) -> np.ndarray:
        """One row (shape (k,)): the single-sample path, same C function with n = 1."""
        return self.predict(np.asarray(x).reshape(1, -1), raw=raw)[0]

    def _shape(self, out: np.ndarray, raw: bool) -> np.ndarray:
        if self.kind == "multiclass":
            return out
        if self.kind == "binary" and self.n_outputs == 2:
            return out[:, 1].copy()  # forests give both class probabilities
        return out[:, 0].copy()
