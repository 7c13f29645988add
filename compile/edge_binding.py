"""cffi binding to the edge library built from :mod:`compile.edge` (``libiotengine.so``): the C ABI of
``iotengine.h`` as seen from Python.

The library is hashed and checked against the sha256 its bundle recorded before it is opened. States live in a
NumPy buffer owned by the caller (:class:`engine.stream.scorer.StreamScorer`), ``state_size`` bytes per machine;
:data:`SCORES_DTYPE` is ``iot_scores`` as a NumPy structured dtype, checked against the C compiler's layout when
the library is opened. cffi releases the GIL during each call.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from compile.binding import open_verified_library
from compile.errors import CompileError, InvalidInputError

__all__ = ["IOT_EINVAL", "IOT_LATE", "IOT_OK", "SCORES_DTYPE", "EdgeLibrary"]

IOT_OK, IOT_LATE, IOT_EINVAL = 0, 1, 2

_CDEF = """
typedef struct {
  double  anomaly, maintenance, downtime;
  int32_t failure_type;
  double  failure_proba[5];
  double  remaining_life;
} iot_scores;
size_t iot_state_size(void);
void   iot_state_init(void *s, int32_t utc_offset_minutes);
int    iot_features(void *s, int64_t timestamp_s, const double *sensors, double *out);
int    iot_score(void *s, int64_t timestamp_s, const double *sensors, int32_t machine_status, iot_scores *out);
int    iot_score_many(void *states, const int64_t *index, const int64_t *timestamps_s, const double *sensors,
                      const int32_t *machine_status, int64_t n, iot_scores *out, int32_t *codes);
"""

SCORES_DTYPE = np.dtype(
    [
        ("anomaly", np.float64),
        ("maintenance", np.float64),
        ("downtime", np.float64),
        ("failure_type", np.int32),
        ("failure_proba", np.float64, (5,)),
        ("remaining_life", np.float64),
    ],
    align=True,
)


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
        self.ffi, self.lib = open_verified_library(path, sha256, _CDEF, "edge library")
        self.path = path
        if self.ffi.sizeof("iot_scores") != SCORES_DTYPE.itemsize:
            raise CompileError(
                f"{path}: iot_scores is {self.ffi.sizeof('iot_scores')} bytes, not {SCORES_DTYPE.itemsize}"
            )
        self.state_size = int(self.lib.iot_state_size())

    def new_states(self, count: int, utc_offset_minutes: int) -> np.ndarray:
        """``count`` initialised states, one row of ``state_size`` bytes each (8-byte aligned)."""
        states = np.zeros((count, self.state_size // 8), dtype=np.int64)  # int64 rows: aligned for the doubles
        for k in range(count):
            self.init_state(states, k, utc_offset_minutes)
        return states

    def init_state(self, states: np.ndarray, k: int, utc_offset_minutes: int) -> None:
        self.lib.iot_state_init(self._row(states, k), int(utc_offset_minutes))

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
            self.ffi.from_buffer(states),
            self.ffi.cast("int64_t *", self.ffi.from_buffer(index)),
            self.ffi.cast("int64_t *", self.ffi.from_buffer(timestamps_s)),
            self.ffi.cast("double *", self.ffi.from_buffer(sensors)),
            self.ffi.cast("int32_t *", self.ffi.from_buffer(statuses)),
            n,
            self.ffi.cast("iot_scores *", self.ffi.from_buffer(out)),
            self.ffi.cast("int32_t *", self.ffi.from_buffer(codes)),
        )
        if rc != IOT_OK:
            raise CompileError(f"{self.path.name}: iot_score_many returned {rc}")

    def single_scorer(self):
        """A reusable single-sample call: ``call(states, k, timestamp_s, sensors, status)`` returns
        ``(code, scores)`` with ``scores`` a cffi ``iot_scores`` struct (valid until the next call). It keeps its
        own input and output buffers and reuses the states' address until the buffer changes: the
        lowest-overhead way to score one sample from Python."""
        ffi, lib = self.ffi, self.lib
        sensors = ffi.new("double[5]")
        out = ffi.new("iot_scores *")
        size = self.state_size
        cached = {"buffer": None, "pointer": None}

        def call(states: np.ndarray, k: int, timestamp_s: int, values, status: int):
            if cached["buffer"] is not states:
                self._row(states, 0)  # checks dtype, layout and contiguity once per buffer
                cached["buffer"] = states
                cached["pointer"] = ffi.cast("char *", ffi.from_buffer(states))
            if not 0 <= k < states.shape[0]:
                raise IndexError(f"state {k} is outside the buffer of {states.shape[0]}")
            sensors[0:5] = values
            return lib.iot_score(cached["pointer"] + k * size, timestamp_s, sensors, status, out), out

        return call

    def _row(self, states: np.ndarray, k: int):
        if not (states.flags.c_contiguous and states.dtype == np.int64 and states.shape[1] * 8 == self.state_size):
            raise InvalidInputError(f"states must be a C-contiguous int64 buffer of {self.state_size} bytes per row")
        if not 0 <= k < states.shape[0]:
            raise IndexError(f"state {k} is outside the buffer of {states.shape[0]}")
        return self.ffi.from_buffer(states[k])
