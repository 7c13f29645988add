"""Third-party libraries that talk on the console: their output captured, known notices dropped, the rest kept.

tl2cgen's native library logs to the process's stdout and stderr file descriptors (past Python's ``sys.stdout``)
and through ``print``, and onnxruntime's quantizer through the root logger. :func:`third_party_output` redirects
both descriptors to a temporary file and Python's streams to a buffer around such a call, and filters the root
logger. When the call ends, lines that match :data:`KNOWN_NOTICES` (each one checked
to be harmless, see below) are dropped and counted; anything else is written to stderr as it was, so a real
error message is never lost.

Known notices:

- treelite's "The model you are loading originated from a newer Treelite version" (three lines). tl2cgen 1.0.0
  embeds treelite 4.1.2 and reads checkpoints written by the installed treelite 4.x (pinning treelite 4.1.2 is
  not possible: its scikit-learn importer fails under NumPy 2). ``tests/bundle/test_native.py::
  test_checkpoints_of_installed_treelite_compile_to_the_same_predictions`` shows that checkpoints of every tree
  family written by the installed treelite compile in tl2cgen to predictions identical to the framework's.
- tl2cgen's "Parallel compilation enabled; member trees will be divided into N translation units": a choice
  this project makes on purpose (compile/tl2cgen_source.py).
- onnxruntime's "Please consider to run pre-processing before quantization": shape inference and graph
  optimisation before quantising; the GEMM form has static shapes and is measured after quantisation.

Examples
--------
>>> import os
>>> with third_party_output() as captured:
...     _ = os.write(1, b"Parallel compilation enabled; member trees will be divided into 3 translation units.\\n")
>>> captured.dropped
1
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["KNOWN_NOTICES", "Captured", "third_party_output"]

KNOWN_NOTICES = (
    re.compile(r"The model you are loading originated from a newer Treelite version"),
    re.compile(r"^Currently running Treelite version \d"),
    re.compile(r"^The model checkpoint was generated from Treelite version \d"),
    re.compile(r"Parallel compilation enabled; member trees will be divided into \d+ translation units"),
    re.compile(r"Please consider to run pre-processing before quantization"),
)


@dataclass
class Captured:
    """What a :func:`third_party_output` block printed: ``kept`` lines (re-emitted) and how many were dropped."""

    kept: list[str] = field(default_factory=list)
    dropped: int = 0


def _is_known(line: str) -> bool:
    return any(pattern.search(line) for pattern in KNOWN_NOTICES)


class _DropKnownRecords(logging.Filter):
    def __init__(self, captured: Captured):
        super().__init__()
        self._captured = captured

    def filter(self, record: logging.LogRecord) -> bool:
        if _is_known(record.getMessage()):
            self._captured.dropped += 1
            return False
        return True


@contextmanager
def third_party_output() -> Iterator[Captured]:
    """Capture file descriptors 1 and 2, Python's ``sys.stdout`` and ``sys.stderr`` (which may not be those
    descriptors, e.g. under pytest), and known notices logged to the root logger, for the block."""
    with _ONE_AT_A_TIME:
        yield from _captured()


# File descriptors and sys.stdout belong to the process: two threads capturing at once would restore each other's
# sinks. Output that other threads print meanwhile is captured too, and re-emitted with the kept lines.
_ONE_AT_A_TIME = threading.RLock()  # re-entrant: a capture may nest in one thread


def _captured() -> Iterator[Captured]:
    captured = Captured()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = (os.dup(1), os.dup(2))
    python_streams = (sys.stdout, sys.stderr)
    text_sink = io.StringIO()
    root = logging.getLogger()
    drop = _DropKnownRecords(captured)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            sys.stdout = sys.stderr = text_sink
            root.addFilter(drop)
            yield captured
        finally:
            root.removeFilter(drop)
            sys.stdout, sys.stderr = python_streams
            for stream in python_streams:
                stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            text = sink.read().decode("utf-8", errors="replace") + text_sink.getvalue()
            for line in text.splitlines():
                if not line.strip():
                    continue
                if _is_known(line):
                    captured.dropped += 1
                else:
                    captured.kept.append(line)
            if captured.kept:
                print("\n".join(captured.kept), file=sys.stderr, flush=True)
