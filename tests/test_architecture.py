"""The layout's rules, checked on the source: the layers contract of pyproject.toml (import-linter), modules of a
few hundred lines, and no private name imported from another module."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kernels", "compile", "engine", "bench", "scripts")
MAX_LINES = 420  # "modules of a few hundred lines": about 400


def _modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def test_the_layers_contract_holds():
    command = shutil.which("lint-imports")
    assert command is not None, "import-linter is part of the dev extra"
    done = subprocess.run([command], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def test_no_module_is_longer_than_a_few_hundred_lines():
    long = {
        str(p.relative_to(ROOT)): n for p in _modules(*PACKAGES) if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_no_private_name_is_imported_from_another_module():
    first_party = (*PACKAGES, "tests")
    found = []
    for path in _modules(*first_party):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in first_party:
                found += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names if a.name[0] == "_"]
    assert [f for f in found if not f.endswith(".__version__")] == []
