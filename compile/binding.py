"""cffi binding to a native tree library built by :mod:`compile.native`.

One :class:`NativeModel` per library: the ``.so`` is hashed and checked against the sha256 its bundle recorded
*before* it is opened (a corrupted or foreign library is never loaded), opened once, and every call's status
is checked. :meth:`NativeModel.predict` passes the caller's float64 array to C without copying it (any
C-contiguous (n, k) array with k >= the model's features; other layouts are copied once); cffi releases the
GIL for the duration of the call, so large batches do not block other Python threads. Libraries of iotengine's own
generator (compile/tree_codegen.py) also take a number of threads per call, and a single row without the batch
checks.

The output transform is the one the model file names (LightGBM's sigmoid and softmax, forests' averaging), done
by tl2cgen's C code in double precision; ``raw=True`` returns margins.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
from cffi import FFI
from scipy.special import expit, softmax

from compile.errors import CompileError

__all__ = ["NativeModel", "open_verified_library"]

_FLOAT64 = np.dtype(np.float64)

_CDEF = """
int32_t get_num_feature(void);
int32_t iot_num_outputs(void);
int iot_predict(const double *X, int64_t n_rows, int64_t row_stride, int pred_margin, double *out);
"""
# What the libraries of compile/tree_codegen.py add to tl2cgen's ABI. The row and the output are declared void* on
# the Python side only (the C takes doubles): cffi then takes an untyped ffi.from_buffer, the cheapest way to pass
# an array.
_CDEF_IOT = """
int iot_predict_row(const void *x, int pred_margin, void *out);
int iot_predict_threads(const double *X, int64_t n_rows, int64_t row_stride, int pred_margin, double *out,
                        int n_threads);
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
    # Load the bytes that were verified, not the path again: a file replaced between the hash and dlopen must not
    # be what runs. A private copy (a fresh folder only this user can enter) is dlopen'ed and removed at once; the
    # mapping stays valid.
    with tempfile.TemporaryDirectory(prefix="iotengine-lib-") as folder:
        private = Path(folder) / path.name
        private.write_bytes(data)
        try:
            lib = ffi.dlopen(str(private))
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
        self._ffi, self._lib = open_verified_library(path, sha256, _CDEF + _CDEF_IOT, "native library")
        self.path = path
        self.kind = kind
        # scikit-learn's HistGradientBoosting: treelite's C transform is not scikit-learn's, so take the margin
        # and apply scikit-learn's link (expit, softmax) in float64 here.
        self.link_in_numpy = link_in_numpy
        self.n_features = int(self._lib.get_num_feature())
        self.n_outputs = int(self._lib.iot_num_outputs())
        try:  # cffi resolves a symbol when it is first used: an absent one is an AttributeError
            self._predict_threads, self._predict_row = self._lib.iot_predict_threads, self._lib.iot_predict_row
        except AttributeError:
            self._predict_threads = self._predict_row = None
        self.threaded = self._predict_threads is not None
        self._from_buffer, self._new = self._ffi.from_buffer, self._ffi.new
        self._outputs_type = self._ffi.typeof("double[]")

    def predict(self, X: np.ndarray, *, raw: bool = False, threads: int = 1) -> np.ndarray:
        """Scores of every row of ``X`` (shape (n, k), k >= :attr:`n_features`; NaN = missing).

        ``threads`` > 1 splits the rows over that many threads (libraries of compile/tree_codegen.py only; the
        scores are the same bits for any number)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] < self.n_features:
            raise CompileError(f"{self.path.name}: inputs must have shape (n, >={self.n_features}), not {X.shape}")
        if X.dtype != np.float64 or not X.flags.c_contiguous:
            X = np.ascontiguousarray(X, dtype=np.float64)
        if threads != 1 and (not self.threaded or threads < 1):
            why = "it has no threaded entry" if not self.threaded else "threads must be >= 1"
            raise CompileError(f"{self.path.name}: cannot predict on {threads} threads: {why}")
        out = np.empty((X.shape[0], self.n_outputs))
        margin = 1 if raw or self.link_in_numpy else 0
        x, y = self._from_buffer("double[]", X), self._from_buffer("double[]", out)
        if threads == 1:
            status = self._lib.iot_predict(x, X.shape[0], X.shape[1], margin, y)
        else:
            status = self._predict_threads(x, X.shape[0], X.shape[1], margin, y, threads)
        if status != 0:
            raise CompileError(f"{self.path.name}: iot_predict returned {status}")
        return self._finish(out, raw)

    def predict_row(self, x: np.ndarray, *, raw: bool = False):
        """One row (shape (k,), k >= :attr:`n_features`): the single-sample path. A float for binary and regression
        models (the (k,) array of class probabilities for multiclass ones), as ``predict(x[None])[0]``."""
        if self._predict_row is None or self.link_in_numpy:
            return self.predict(np.asarray(x).reshape(1, -1), raw=raw)[0]
        if type(x) is not np.ndarray or x.dtype is not _FLOAT64 or x.ndim != 1 or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=np.float64)  # the bytes are read as doubles: only float64 passes
            if x.ndim != 1:
                raise CompileError(f"{self.path.name}: a row must have shape (k,), not {x.shape}")
        if x.shape[0] < self.n_features:
            raise CompileError(f"{self.path.name}: a row must have >= {self.n_features} values, not {x.shape[0]}")
        if self.kind == "multiclass":
            probabilities = np.empty(self.n_outputs)
            if self._predict_row(self._from_buffer(x), 1 if raw else 0, self._from_buffer(probabilities)):
                raise CompileError(f"{self.path.name}: iot_predict_row failed")
            return probabilities
        out = self._new(self._outputs_type, self.n_outputs)
        if self._predict_row(self._from_buffer(x), 1 if raw else 0, out):
            raise CompileError(f"{self.path.name}: iot_predict_row failed")
        return out[1] if self.kind == "binary" and self.n_outputs == 2 else out[0]

    def _finish(self, out: np.ndarray, raw: bool) -> np.ndarray:
        if self.link_in_numpy and not raw and self.kind != "regression":
            out = expit(out) if self.kind == "binary" else softmax(out, axis=1)
        return self._shape(out, raw)

    def _shape(self, out: np.ndarray, raw: bool) -> np.ndarray:
        if self.kind == "multiclass":
            return out
        if self.kind == "binary" and self.n_outputs == 2:
            return out[:, 1].copy()  # forests give both class probabilities
        return out[:, 0].copy()
