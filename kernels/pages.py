"""Pages of a fresh output mapped by the threads that will write it."""

from __future__ import annotations

from kernels.config import jit

__all__ = ["touch_pages"]


@jit
def touch_pages(flat, start, stop):
    """Write 0 once every 4 KiB of ``flat[start:stop]`` (float64 or float32), so the OS maps and zeroes those
    pages now, on this thread: threads that touch their own ranges of a fresh output share that work."""
    step = 4096 // flat.itemsize
    for k in range(start, stop, step):
        flat[k] = 0
