"""The stages of a long job on the console: one line per finished stage, everything else in a log file.

While a stage runs, the process's stdout and stderr (file descriptors 1 and 2, so native libraries' output too)
and Python's warnings go to the log; the console gets a progress bar (on a terminal) and, when the stage ends,
one line: ``[k/n] name: summary, seconds`` (plus the number of warnings, which the log holds).

Examples
--------
>>> import os, tempfile
>>> log = os.path.join(tempfile.mkdtemp(), "run.log")
>>> with Stages(total=1, log_path=log) as stages:
...     value = stages.run("add", lambda: os.write(1, b"noise\\n") and 2 + 2, summary=lambda v: f"got {v}")
>>> value
4
>>> stages.done[0][0]
'add'
>>> open(log).read().splitlines()[:2]
['== [1/1] add', 'noise']
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

__all__ = ["Stages"]

T = TypeVar("T")


class Stages:
    """Runs the stages of a job; use as a context manager (it owns the log file and a handle on the console)."""

    def __init__(self, total: int, log_path: str | os.PathLike):
        self.total = total
        self.log_path = Path(log_path)
        self.done: list[tuple[str, float]] = []
        self._console = None
        self._log = None
        self._bar = None

    def __enter__(self) -> Stages:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w", buffering=1)
        sys.stderr.flush()
        # A handle on the console that stays there while a stage's file descriptor 2 points at the log.
        self._console = os.fdopen(os.dup(2), "w", buffering=1)
        self._bar = tqdm(
            total=self.total,
            unit="stage",
            leave=False,
            file=self._console,
            bar_format="{desc} [{n_fmt}/{total_fmt}] {elapsed}",
            disable=not self._console.isatty(),  # in a log the per-stage lines are the progress
        )
        return self

    def __exit__(self, *exc) -> bool:
        self._bar.close()
        self._console.close()
        self._log.close()
        return False

    def run(self, name: str, work: Callable[[], T], summary: Callable[[T], str] | None = None) -> T:
        """Run one stage with its output in the log; print its line; return what ``work`` returned."""
        index = len(self.done) + 1
        self._bar.set_description_str(name)
        self._log.write(f"== [{index}/{self.total}] {name}\n")
        started, cpu = time.perf_counter(), _cpu_seconds()
        with _into(self._log), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            result = work()
        for warning in caught:
            self._log.write(f"warning: {warning.category.__name__}: {warning.message}\n")
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu
        self._log.write(f"== {seconds:.1f} s, {cpu:.1f} s of CPU ({cpu / max(seconds, 1e-9):.2f} cores)\n")
        self.done.append((name, seconds))
        self._bar.update(1)
        parts = [" ".join(summary(result).split())] if summary is not None else []  # one line, always
        if caught:
            parts.append(f"{len(caught)} warning{'s' * (len(caught) > 1)} in {self.log_path.name}")
        parts.append(f"{seconds:.1f} s")
        tqdm.write(f"[{index}/{self.total}] {name}: {', '.join(parts)}", file=self._console)
        return result


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (compilers, benchmark drivers)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class _into:
    """File descriptors 1 and 2, and Python's ``sys.stdout`` and ``sys.stderr`` (which need not be those
    descriptors, e.g. in a notebook or under pytest), redirected to an open text file for the block."""

    def __init__(self, sink):
        self._sink = sink

    def __enter__(self):
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self._sink.flush()
        self._saved = (os.dup(1), os.dup(2))
        self._streams = (sys.stdout, sys.stderr)
        os.dup2(self._sink.fileno(), 1)
        os.dup2(self._sink.fileno(), 2)
        sys.stdout = sys.stderr = self._sink
        return self

    def __exit__(self, *exc):
        self._sink.flush()
        sys.stdout, sys.stderr = self._streams
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in self._saved:
            os.close(fd)
        return False
