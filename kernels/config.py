"""The one place for jit options and numeric constants shared by the kernels.

Every kernel is compiled by ``numba.njit`` (nopython mode) with :data:`JIT_OPTIONS`: cached to disk, the
GIL released, and never fastmath, because fastmath lets LLVM reassociate sums and contract multiply-adds,
which would break the bit-for-bit agreement between the batch and streaming paths and the C port
(../shared/spec/features.md).
``error_model="numpy"`` makes float division by zero give inf/NaN like NumPy instead of raising.
"""

from __future__ import annotations

import numba

JIT_OPTIONS: dict[str, object] = {
    "cache": True,
    "nogil": True,
    "fastmath": False,
    "error_model": "numpy",
}


def jit(function):
    """Compile ``function`` with :data:`JIT_OPTIONS`."""
    return numba.njit(**JIT_OPTIONS)(function)


def jit_inline(function):
    """Compile a small helper that Numba inlines into its callers.

    A call between jitted functions that is not inlined passes each array as a struct and increments and
    decrements its reference count atomically; for helpers called many times per sample that costs more than
    the arithmetic they do.
    """
    return numba.njit(inline="always", **JIT_OPTIONS)(function)
