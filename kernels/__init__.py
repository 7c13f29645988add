"""Numba kernels over plain arrays: no classes, no I/O; all jit options come from :mod:`kernels.config`."""
