"""Links of a Markdown report: every relative link must name a file or folder that exists.

Examples
--------
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

__all__ = ["missing_links", "relative_links"]

_LINK = re.compile(r"\]\(([^)\s]+)\)")


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
