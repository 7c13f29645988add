"""The C sources of compile/c/: real ``.c``/``.h`` files, and templates (``.in``) whose ``@NAME@`` placeholders
are filled in here.

>>> "iot_batch.c.in" in {p.name for p in C_DIR.iterdir()}
True
>>> fill_text("#define N @N@", N=3)
'#define N 3'
>>> c_double(0.1), c_double(float("inf"))
('0x1.999999999999ap-4', 'HUGE_VAL')
>>> c_real(0.1, "float"), c_real(0.1, "float", rounding="up"), c_real(0.1, "double")
('0x1.99999ap-4f', '0x1.99999ap-4f', '0x1.999999999999ap-4')
>>> c_real(0.7, "float"), c_real(0.7, "float", rounding="up"), c_real(1.0, "float")
('0x1.666666p-1f', '0x1.666668p-1f', '0x1p+0f')
>>> fill_text("@A@ @B@", A=1)
Traceback (most recent call last):
...
compile.errors.CompileError: <text>: placeholder(s) @B@ not filled in
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from compile.errors import CompileError

__all__ = ["C_DIR", "REALS", "c_double", "c_doubles", "c_real", "c_reals", "c_source", "fill", "fill_text"]

C_DIR = Path(__file__).resolve().parent / "c"
REALS = ("double", "float")  # the arithmetic types of the edge library (iotengine.h's iot_real)
_PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")


def c_source(name: str) -> str:
    """The text of ``compile/c/<name>``."""
    return (C_DIR / name).read_text()


def fill_text(text: str, source: str = "<text>", **values) -> str:
    """``text`` with every ``@KEY@`` replaced by ``str(values[KEY])``; a placeholder left over is an error."""
    missing = sorted({m for m in _PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise CompileError(f"{source}: placeholder(s) {', '.join(f'@{m}@' for m in missing)} not filled in")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def fill(name: str, **values) -> str:
    """The template ``compile/c/<name>`` filled in with ``values``."""
    return fill_text(c_source(name), name, **values)


def c_double(value: float) -> str:
    """A C literal of the exact double: a hex float; infinity as math.h's HUGE_VAL (scikit-learn splits at +inf to
    send only missing values one way). NaN has no literal: CompileError."""
    value = float(value)
    if math.isinf(value):
        return "HUGE_VAL" if value > 0 else "(-HUGE_VAL)"
    if math.isnan(value):
        raise CompileError("a constant to write as C is NaN")
    return value.hex()


def c_doubles(name: str, values) -> str:
    """``static const double name[n] = {...};`` of ``values`` (flattened), exact (:func:`c_double`)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return f"static const double {name}[{values.size}] = {{{', '.join(c_double(v) for v in values)}}};\n"


def c_real(value: float, real: str, *, rounding: str = "nearest") -> str:
    """A C literal of ``value`` as the type ``real``: the exact double (:func:`c_double`), or a float literal (``f``
    suffix) of the nearest float, or with ``rounding="up"`` of the smallest float not below it, so that for any
    float p, ``p >= literal`` decides as ``(double)p >= value`` (a decision threshold)."""
    if real == "double":
        return c_double(value)
    if real != "float":
        raise CompileError(f"real must be one of {REALS}, not {real!r}")
    value = float(value)
    if math.isnan(value):
        raise CompileError("a constant to write as C is NaN")
    with np.errstate(over="ignore"):
        single = np.float32(value)
    if rounding == "up" and float(single) < value:
        single = np.nextafter(single, np.float32(np.inf))
    elif rounding not in ("nearest", "up"):
        raise CompileError(f"rounding must be nearest or up, not {rounding!r}")
    if np.isinf(single):
        return "HUGE_VALF" if single > 0 else "(-HUGE_VALF)"
    mantissa, exponent = float(single).hex().split("p")
    return f"{mantissa.rstrip('0').rstrip('.')}p{exponent}f"


def c_reals(name: str, values, real: str) -> str:
    """``static const iot_real name[n] = {...};`` of ``values`` (flattened), as :func:`c_real` of ``real``."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return f"static const iot_real {name}[{values.size}] = {{{', '.join(c_real(v, real) for v in values)}}};\n"
