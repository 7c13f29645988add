"""Every module of the library imports with the runtime dependencies alone: the dev extra's packages (pandas,
hypothesis, pytest) are made unimportable in a fresh interpreter, which then imports each module.

bench/test_*.py are pytest-benchmark suites, run by pytest (the ``bench`` extra), and bench/lleaves_runner.py runs
inside lleaves' own environment (bench/lleaves_env.py): neither is a library module.
CI also runs the main job in a virtual environment without the dev extra (.ci/run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kernels", "compile", "engine", "bench")
DEV_ONLY = ("pandas", "hypothesis", "pytest", "_pytest", "pytest_benchmark")
RUN_ELSEWHERE = ("lleaves_runner", "__main__")  # __main__ modules run a command when imported


def _library_modules(package: str) -> list[Path]:
    return [
        path
        for path in sorted((ROOT / package).rglob("*.py"))
        if not path.stem.startswith("test_") and path.stem not in RUN_ELSEWHERE and "__pycache__" not in path.parts
    ]


PROGRAM = f"""
import importlib, importlib.abc, sys
from pathlib import Path

class DevOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {DEV_ONLY!r}:
            raise ImportError(f"{{name}} is a dev-only package")
        return None

sys.meta_path.insert(0, DevOnly())
root = Path({str(ROOT)!r})
imported = []
for package in {PACKAGES!r}:
    for path in sorted((root / package).rglob("*.py")):
        if path.stem.startswith("test_") or path.stem in {RUN_ELSEWHERE!r} or "__pycache__" in path.parts:
            continue
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        importlib.import_module(name)
        imported.append(name)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in {DEV_ONLY!r})
print(len(imported), leaked)
"""


def test_every_module_imports_without_the_dev_extra():
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    count, leaked = done.stdout.split(maxsplit=1)
    modules = sum(len(_library_modules(package)) for package in PACKAGES)
    assert int(count) == modules > 90
    assert leaked.strip() == "[]"


def test_a_feature_of_an_extra_names_the_extra_when_missing():
    program = (
        "import sys, importlib.abc\n"
        "class NoPandas(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'pandas': raise ImportError('no pandas')\n"
        "sys.meta_path.insert(0, NoPandas())\n"
        "from bench.baselines import pandas_features\n"
        "from engine.data.synthetic import generate\n"
        "pandas_features(generate(10, mode='fleet'))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        'engine.errors.MissingExtraError: the pandas baseline needs pandas: pip install -e ".[bench]"'
    )


if __name__ == "__main__":  # CI runs this in the environment without the dev extra: every module imports there
    done = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, timeout=600)
    raise SystemExit(done.returncode)
