"""Packages that only an optional extra installs, imported where a feature needs them, with a one-line error.

Examples
--------
>>> optional_import("json", "bench", "an example").__name__
'json'
>>> optional_import("no_such_package_here", "bench", "the pandas baseline")
Traceback (most recent call last):
...
engine.errors.MissingExtraError: the pandas baseline needs no_such_package_here: pip install -e ".[bench]"
"""

from __future__ import annotations

import importlib
from types import ModuleType

from engine.errors import MissingExtraError

__all__ = ["MissingExtraError", "optional_import"]


def optional_import(module: str, extra: str, purpose: str) -> ModuleType:
    """``import module``, or MissingExtraError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f'{purpose} needs {module.split(".")[0]}: pip install -e ".[{extra}]"') from None
