"""cffi binding to the edge library built from :mod:`compile.edge` (``libiotengine.so``): the C ABI of
``iotengine.h`` as seen from Python.

The declarations are not copied by hand: they are read from compile/c/iotengine.h.in, the header every edge
library is built with, between its ``IOT_ABI_BEGIN`` and ``IOT_ABI_END`` markers. The status codes, the
:data:`SCORES_DTYPE` layout of ``iot_scores`` and the state size come from those declarations, and opening a
library checks that its ``iot_state_size()`` and failure-type names agree with them.

The library is hashed and checked against the sha256 its bundle recorded before it is opened. States live in a
NumPy buffer owned by the caller (:class:`engine.stream.scorer.StreamScorer`), ``state_size`` bytes per machine.
cffi releases the GIL during each call.

>>> STATUS["IOT_LATE"], SCORES_DTYPE.itemsize, SCORES_DTYPE.names[3]
(1, 128, 'failure_type')
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from cffi import FFI

from compile.binding import open_verified_library
from compile.errors import CompileError, InvalidInputError
from compile.templates import c_source, fill_text
from kernels.names import FAILURE_TYPES

__all__ = [
    "ABI",
    "IOT_EINVAL",
    "IOT_LATE",
    "IOT_OK",
    "SCORES_DTYPE",
    "STATUS",
    "EdgeLibrary",
    "SingleScorer",
    "abi_declarations",
    "real_abi",
]

HEADER = "iotengine.h.in"
_BEGIN, _END = "/* IOT_ABI_BEGIN */", "/* IOT_ABI_END */"


def abi_declarations(header: str) -> str:
    """The ABI part of an ``iotengine.h`` (between its markers), as cffi declarations."""
    if header.count(_BEGIN) != 1 or header.count(_END) != 1:
        raise CompileError("iotengine.h must mark its ABI with one IOT_ABI_BEGIN and one IOT_ABI_END comment")
    return header[header.index(_BEGIN) + len(_BEGIN) : header.index(_END)]


def real_abi(real: str = "double") -> str:
    """The ABI of an edge library whose iot_real is ``real`` (the header's two typedefs filled in)."""
    count = {"double": "int64_t", "float": "uint32_t"}[real]
    return fill_text(abi_declarations(c_source(HEADER)), HEADER, REAL=real, COUNT=count)


# The binding loads double builds: the Numba kernel's arithmetic and state layout.
ABI = real_abi("double")
_LAYOUT = FFI()
_LAYOUT.cdef(ABI)

# enum iot_status, by name
STATUS: dict[str, int] = {name: value for value, name in _LAYOUT.typeof("enum iot_status").elements.items()}
IOT_OK, IOT_LATE, IOT_EINVAL = STATUS["IOT_OK"], STATUS["IOT_LATE"], STATUS["IOT_EINVAL"]


def _numpy_dtype(ffi: FFI, name: str) -> np.dtype:
    """A C struct as a NumPy structured dtype with the compiler's offsets (from cffi's view of the header)."""
    scalar = {"double": np.float64, "int32_t": np.int32, "int64_t": np.int64}
    names, formats, offsets = [], [], []
    for field_name, field in ffi.typeof(name).fields:
        kind = field.type
        if kind.kind == "array":
            formats.append((scalar[kind.item.cname], (kind.length,)))
        else:
            formats.append(scalar[kind.cname])
        names.append(field_name)
        offsets.append(field.offset)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": ffi.sizeof(name)})


SCORES_DTYPE = _numpy_dtype(_LAYOUT, "iot_scores")


class EdgeLibrary:
    """``libiotengine.so`` loaded once, after its sha256 is checked.

    Parameters
    ----------
    path : path
    sha256 : str or None
        Expected sha256 of the file; None only for a library the caller has just built itself.
    """

    def __init__(self, path: str | os.PathLike, sha256: str | None):
        path = Path(path)
        self.ffi, self.lib = open_verified_library(path, sha256, ABI, "edge library")
        self.path = path
        try:
            self.state_size = int(self.lib.iot_state_size())
        except AttributeError:  # cffi resolves symbols on first use
            raise CompileError(f"{path}: not an iotengine edge library (it has no iot_state_size)") from None
        if self.state_size != self.ffi.sizeof("iot_state"):
            raise CompileError(
                f"{path}: iot_state is {self.state_size} bytes in the library, {self.ffi.sizeof('iot_state')} in "
                f"{HEADER}: the library was built from another header"
            )
        names = tuple(self.ffi.string(self.lib.iot_failure_type_names[k]).decode() for k in range(len(FAILURE_TYPES)))
        if names != FAILURE_TYPES:
            raise CompileError(f"{path}: the library's failure types {names} are not {FAILURE_TYPES}")

    def status_str(self, status: int) -> str:
        """``iot_status_str``: what a status code means."""
        return self.ffi.string(self.lib.iot_status_str(int(status))).decode()

    def new_states(self, count: int, utc_offset_minutes: int) -> np.ndarray:
        """``count`` initialised states, one row of ``state_size`` bytes each (8-byte aligned)."""
        states = np.zeros((count, self.state_size // 8), dtype=np.int64)  # int64 rows: aligned for the doubles
        for k in range(count):
            self.init_state(states, k, utc_offset_minutes)
        return states

    def init_state(self, states: np.ndarray, k: int, utc_offset_minutes: int) -> None:
        """``iot_state_init`` of state ``k``; an offset the library refuses raises InvalidInputError."""
        rc = self.lib.iot_state_init(self._row(states, k), int(utc_offset_minutes))
        if rc != IOT_OK:
            raise InvalidInputError(f"iot_state_init(utc_offset_minutes={utc_offset_minutes}): {self.status_str(rc)}")

    def state_status(self, states: np.ndarray, k: int) -> int:
        """``iot_state_check`` of state ``k``: IOT_OK, or IOT_ECORRUPT for a state no samples can produce."""
        return int(self.lib.iot_state_check(self._row(states, k)))

    def features(self, states: np.ndarray, k: int, timestamp_s: int, sensors: np.ndarray, out: np.ndarray) -> int:
        """``iot_features`` on state ``k``; returns the status code."""
        return int(
            self.lib.iot_features(
                self._row(states, k),
                int(timestamp_s),
                self.ffi.from_buffer("double[]", sensors),
                self.ffi.from_buffer("double[]", out),
            )
        )

    def score(
        self, states: np.ndarray, k: int, timestamp_s: int, sensors: np.ndarray, status: int, out: np.ndarray
    ) -> int:
        """``iot_score`` on state ``k`` into ``out`` (a one-element :data:`SCORES_DTYPE` array)."""
        return int(
            self.lib.iot_score(
                self._row(states, k),
                int(timestamp_s),
                self.ffi.from_buffer("double[]", sensors),
                int(status),
                self.ffi.cast("iot_scores *", self.ffi.from_buffer(out)),
            )
        )

    def score_many(
        self,
        states: np.ndarray,
        index: np.ndarray,
        timestamps_s: np.ndarray,
        sensors: np.ndarray,
        statuses: np.ndarray,
        out: np.ndarray,
        codes: np.ndarray,
    ) -> None:
        """``iot_score_many`` over contiguous arrays: index/timestamps int64 (n,), sensors float64 (n, 5),
        statuses int32 (n,), out :data:`SCORES_DTYPE` (n,), codes int32 (n,)."""
        n = index.shape[0]
        if not (
            states.flags.c_contiguous
            and index.dtype == np.int64
            and timestamps_s.dtype == np.int64
            and sensors.dtype == np.float64
            and sensors.shape == (n, 5)
            and statuses.dtype == np.int32
            and out.dtype == SCORES_DTYPE
            and codes.dtype == np.int32
            and all(a.flags.c_contiguous and a.shape[0] == n for a in (timestamps_s, sensors, statuses, out, codes))
        ):
            raise InvalidInputError("score_many needs contiguous arrays of the documented dtypes and matching lengths")
        if n and (index.min() < 0 or index.max() >= states.shape[0]):
            raise InvalidInputError("score_many: a state index is outside the state buffer")
        rc = self.lib.iot_score_many(
            self.ffi.cast("iot_state *", self.ffi.from_buffer(states)),
            self.ffi.cast("int64_t *", self.ffi.from_buffer(index)),
            self.ffi.cast("int64_t *", self.ffi.from_buffer(timestamps_s)),
            self.ffi.cast("double *", self.ffi.from_buffer(sensors)),
            self.ffi.cast("int32_t *", self.ffi.from_buffer(statuses)),
            n,
            self.ffi.cast("iot_scores *", self.ffi.from_buffer(out)),
            self.ffi.cast("int32_t *", self.ffi.from_buffer(codes)),
        )
        if rc != IOT_OK:
            raise CompileError(f"{self.path.name}: iot_score_many: {self.status_str(rc)}")

    def single_scorer(self) -> SingleScorer:
        """A reusable ``iot_score`` of one sample: see :class:`SingleScorer`."""
        return SingleScorer(self)

    def check_states(self, states: np.ndarray) -> None:
        """InvalidInputError unless ``states`` is a buffer of states as :meth:`new_states` makes them."""
        if not (states.flags.c_contiguous and states.dtype == np.int64 and states.shape[1] * 8 == self.state_size):
            raise InvalidInputError(f"states must be a C-contiguous int64 buffer of {self.state_size} bytes per row")

    def _row(self, states: np.ndarray, k: int):
        self.check_states(states)
        if not 0 <= k < states.shape[0]:
            raise IndexError(f"state {k} is outside the buffer of {states.shape[0]}")
        return self.ffi.cast("iot_state *", self.ffi.from_buffer(states[k]))


class SingleScorer:
    """``iot_score`` of one sample from Python at the lowest overhead.

    :meth:`bind` takes the state buffer's address once (and again whenever the caller replaces the buffer); the
    scores land in one :data:`SCORES_DTYPE` record, and :meth:`__call__` returns them as a list of Python values,
    in the record's field order, with the probabilities as a new array.
    """

    def __init__(self, library: EdgeLibrary):
        self._library = library
        self._score = library.lib.iot_score
        self._out = np.zeros(1, dtype=SCORES_DTYPE)
        self._out_pointer = library.ffi.cast("iot_scores *", library.ffi.from_buffer(self._out))
        self._proba = SCORES_DTYPE.names.index("failure_proba")
        self._states = None
        self._pointers: list = []

    def bind(self, states: np.ndarray) -> None:
        """Score into the rows of ``states`` (as :meth:`EdgeLibrary.new_states` makes them) from now on."""
        self._library.check_states(states)
        self._states = states  # kept alive as long as the pointers are used
        base = self._library.ffi.cast("iot_state *", self._library.ffi.from_buffer(states))
        self._pointers = [base + k for k in range(states.shape[0])]  # a list lookup is cheaper than base + k

    def __call__(self, k: int, timestamp_s: int, sensors: list[float], status: int) -> tuple[int, list]:
        """``(code, fields)`` of one sample on state row ``k``: ``sensors`` is a list of 5 floats; ``fields`` the
        scores in the order of :data:`SCORES_DTYPE`'s names."""
        if k < 0:
            raise IndexError(f"state {k} is outside the buffer of {len(self._pointers)}")
        code = self._score(self._pointers[k], timestamp_s, sensors, status, self._out_pointer)
        fields = list(self._out.item())
        fields[self._proba] = fields[self._proba].copy()  # item() gives a view of the record's subarray
        return code, fields
