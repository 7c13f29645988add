"""The C sources of compile/c/: real ``.c``/``.h`` files, and templates (``.in``) whose ``@NAME@`` placeholders
are filled in here.

>>> "iot_batch.c.in" in {p.name for p in C_DIR.iterdir()}
True
>>> fill_text("#define N @N@", N=3)
'#define N 3'
>>> fill_text("@A@ @B@", A=1)
Traceback (most recent call last):
...
compile.errors.CompileError: <text>: placeholder(s) @B@ not filled in
"""

from __future__ import annotations

import re
from pathlib import Path

from compile.errors import CompileError

__all__ = ["C_DIR", "c_source", "fill", "fill_text"]

C_DIR = Path(__file__).resolve().parent / "c"
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
