"""Markdown of every report: tables, links, and the check that every relative link names a file that exists.

Examples
--------
>>> for line in markdown_table(["model", "ns"], [["anomaly", 218], ["rul", None]]):
...     print(line)
| model | ns |
| --- | --- |
| anomaly | 218 |
| rul |  |
>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> (folder / "a.csv").write_text("x")
1
>>> _ = (folder / "REPORT.md").write_text("[a](a.csv) ![plot](b.png) [site](https://example.org) [top](#top)")
>>> missing_links(folder / "REPORT.md")
['b.png']
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

__all__ = ["link", "markdown_table", "missing_links", "relative_links"]

_LINK = re.compile(r"\]\(([^)\s]+)\)")


def markdown_table(header, rows) -> list[str]:
    """The lines of a Markdown table; a cell of None is empty, any other value is ``str(value)``."""

    def cells(values) -> str:
        return "| " + " | ".join("" if v is None else str(v) for v in values) + " |"

    return [cells(header), "| " + " | ".join("---" for _ in header) + " |", *(cells(row) for row in rows)]


def link(path: str | Path, base: str | Path, text: str | None = None) -> str:
    """A Markdown link to ``path`` relative to the folder ``base`` (the folder of the report)."""
    relative = Path(path).relative_to(base).as_posix()
    return f"[{relative if text is None else text}]({relative})"


def relative_links(markdown: str) -> list[str]:
    """The link targets of a Markdown text that point at local files (no URL, no in-page anchor)."""
    return [target for target in _LINK.findall(markdown) if "://" not in target and not target.startswith("#")]


def missing_links(path: str | Path) -> list[str]:
    """The relative links of the Markdown file at ``path`` whose target does not exist (relative to its folder)."""
    path = Path(path)
    return [t for t in relative_links(path.read_text()) if not (path.parent / t.split("#")[0]).exists()]


if __name__ == "__main__":  # python -m engine.report.markdown REPORT.md ...: exit 1 if any link is broken
    broken = {name: missing_links(name) for name in sys.argv[1:]}
    for name, targets in broken.items():
        for target in targets:
            print(f"{name}: broken link {target}", file=sys.stderr)
    raise SystemExit(1 if any(broken.values()) else 0)
