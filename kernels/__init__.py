"""Numba kernels over plain arrays: no classes, no I/O; all jit options come from :mod:`kernels.config`."""

from kernels.names import FEATURE_NAMES, N_FEATURES

__all__ = ["FEATURE_NAMES", "N_FEATURES"]
