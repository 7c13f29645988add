"""The one error type of :mod:`compile`: a model that cannot be compiled, a library that cannot be trusted or
loaded, a native call that reports failure."""

from __future__ import annotations

__all__ = ["CompileError"]


class CompileError(RuntimeError):
    """Compilation, loading or a native call failed; the message names the model, file or call."""
