"""The figures of the reports: matplotlib without a display (the Agg backend), saved as PNG and closed.

>>> fig, ax = pyplot().subplots()
>>> import tempfile, pathlib
>>> save_figure(fig, pathlib.Path(tempfile.mkdtemp()) / "empty.png").suffix
'.png'
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are written on servers and in CI: never open a window

import matplotlib.pyplot as plt

__all__ = ["pyplot", "save_figure"]


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend."""
    return plt


def save_figure(fig, path: str | Path, *, dpi: int = 110, tight: bool = True) -> Path:
    """Save ``fig`` as PNG at ``path`` and close it (figures are never kept open between reports)."""
    path = Path(path)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
