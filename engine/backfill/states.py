"""A fleet's machine states as a backfill writes them: one FeatureStream snapshot per partition in a folder.

:func:`read_states` reads such a folder (or one snapshot file) into one snapshot, each part's digest and states
checked, so ``FeatureStream.restore``, ``StreamScorer.restore`` and the next backfill's ``--initial-states`` take
it as they take any snapshot.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engine.errors import InvalidInputError
from engine.features.snapshot import read_snapshot, snapshot_bytes

__all__ = ["STATES_SUFFIX", "read_states", "split_states"]

STATES_SUFFIX = ".snapshot"


def read_states(path: str | os.PathLike) -> bytes:
    """One snapshot of every machine in a states folder (machines ascending), or a snapshot file's bytes, checked.

    Raises
    ------
    InvalidInputError
        No snapshot there, a damaged one (naming the file), a machine in two parts, or parts of different UTC
        offsets.
    """
    path = Path(path)
    files = sorted(path.glob(f"*{STATES_SUFFIX}")) if path.is_dir() else [path]
    if not files or not files[0].is_file():
        raise InvalidInputError(f"{path}: no machine states (*{STATES_SUFFIX} files) there")
    parts = []
    for file in files:
        try:
            parts.append(read_snapshot(file.read_bytes()))
        except InvalidInputError as exc:
            raise InvalidInputError(f"{file}: {exc}") from None
    offsets = {meta["utc_offset_minutes"] for _, _, _, meta in parts}
    if len(offsets) > 1:
        raise InvalidInputError(f"{path}: states of different UTC offsets {sorted(offsets)} min")
    ids = np.concatenate([np.asarray(part[0], dtype=np.int64) for part in parts])
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise InvalidInputError(f"{path}: machine {int(unique[counts > 1][0])} has states in two files")
    order = np.argsort(ids, kind="stable")
    fstate = np.concatenate([part[1] for part in parts])[order]
    istate = np.concatenate([part[2] for part in parts])[order]
    late = sum(int(meta["late"]) for _, _, _, meta in parts)
    return snapshot_bytes(ids[order], fstate, istate, offsets.pop(), late)


def split_states(data: bytes, keep) -> bytes:
    """The machines of snapshot ``data`` whose ids are not in ``keep`` (with its late count): the states a
    backfill carries over unchanged for machines its input never names."""
    ids, fstate, istate, meta = read_snapshot(data)
    ids = np.asarray(ids, dtype=np.int64)
    rows = ~np.isin(ids, np.asarray(list(keep), dtype=np.int64))
    return snapshot_bytes(ids[rows], fstate[rows], istate[rows], meta["utc_offset_minutes"], int(meta["late"]))
