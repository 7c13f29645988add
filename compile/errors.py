"""The error base of iotengine, and the errors of :mod:`compile`.

Every error iotengine raises on purpose derives from :class:`IotEngineError` (the engine's own kinds are in
:mod:`engine.errors`), so a caller catches one class; the command line prints its message as one line. The base
lives here, in the lowest layer that raises, because compile/ never imports engine/.
"""

from __future__ import annotations

__all__ = ["CompileError", "InvalidInputError", "IotEngineError"]


class IotEngineError(Exception):
    """Base of every error iotengine raises on purpose; the message names the file, column, row or field."""


class CompileError(IotEngineError, RuntimeError):
    """Compilation, loading or a native call failed; the message names the model, file or call."""


class InvalidInputError(IotEngineError, ValueError):
    """An argument of a public function or command that iotengine cannot use (a ValueError too)."""
