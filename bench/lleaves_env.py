"""lleaves, the LLVM compiler for LightGBM models, in a virtual environment of its own.

lleaves 1.3 needs llvmlite < 0.45, and numba 0.68 (which the engine needs for NumPy 2.4) needs llvmlite 0.50:
the two cannot share an environment. :func:`lleaves_python` finds or builds a separate one (``pip install`` from
the package index) and returns its interpreter; the suite runs ``bench/lleaves_runner.py`` in it as a
subprocess. When the environment cannot be built the suite reports lleaves as unavailable, with the reason.

    python -m bench.lleaves_env          # build it ahead of time (idempotent)

The location is ``$IOTENGINE_LLEAVES_VENV``, else ``~/.cache/iotengine/lleaves-venv``. Compiled models are kept
beside it in ``lleaves-cache/``, named by the sha256 of the model, lleaves' version and the host CPU
(bench/lleaves_runner.py), so a model is compiled once per machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["LLEAVES_CACHE", "LLEAVES_REQUIREMENTS", "RUNNER", "lleaves_python"]

# lleaves uses llvmlite's legacy pass manager, which llvmlite 0.45 removed.
LLEAVES_REQUIREMENTS = ("lleaves==1.3.0", "llvmlite<0.45", "numpy")
RUNNER = Path(__file__).with_name("lleaves_runner.py")


def default_location() -> Path:
    return Path(os.environ.get("IOTENGINE_LLEAVES_VENV", Path.home() / ".cache" / "iotengine" / "lleaves-venv"))


LLEAVES_CACHE = default_location().parent / "lleaves-cache"


def lleaves_python(location: Path | None = None, *, build: bool = True) -> tuple[Path | None, str]:
    """(interpreter, "") of a working lleaves environment, or (None, why not)."""
    location = location or default_location()
    python = location / "bin" / "python"
    if _works(python):
        return python, ""
    if not build:
        return None, f"no lleaves environment at {location} (build it with `python -m bench.lleaves_env`)"
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(location)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *LLEAVES_REQUIREMENTS],
    ]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"building the lleaves environment failed: {exc}"
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return None, f"building the lleaves environment failed at `{' '.join(step[:4])}`: {last[0]}"
    if not _works(python):
        return None, f"{location}: lleaves does not import after installation"
    return python, ""


def _works(python: Path) -> bool:
    if not python.is_file():
        return False
    check = subprocess.run([str(python), "-c", "import lleaves"], capture_output=True, timeout=120)
    return check.returncode == 0


if __name__ == "__main__":
    interpreter, reason = lleaves_python()
    print(interpreter if interpreter else f"unavailable: {reason}")
    raise SystemExit(0 if interpreter else 1)
