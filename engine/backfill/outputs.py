"""Where a backfill writes: a staging folder beside the output, partitions committed one by one, published whole.

While a job runs, everything goes to ``OUTPUT.partial/``::

    job.json                  the job's parameters: a resumed job must have the same ones
    data/part-00003.parquet   partition 3's rows (features or scores), sorted in the order of the samples
    states/part-00003.snapshot  its machines' final states (a FeatureStream snapshot), with --states
    done/part-00003.json      written last: the partition is committed (rows, machines, SHA-256 of its files)

A partition's files are written under temporary names and renamed, and its ``done`` record last, so a job killed
at any point leaves only whole partitions; ``--resume`` runs only the others. When every partition has committed,
``data/`` becomes OUTPUT (with ``_backfill.json``, the job's manifest) and ``states/`` the --states folder, each
by one rename, replacing what was there only then: a failed job leaves no partial output.

Parquet row groups are cut at fixed multiples of :data:`ROW_GROUP_ROWS` rows, so a partition's file has the same
bytes for any Arrow batch size.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import InvalidInputError, StreamStateError

__all__ = ["BACKFILL_FORMAT", "MANIFEST", "ROW_GROUP_ROWS", "PartWriter", "Staging", "part_name", "sha256_file"]

BACKFILL_FORMAT = "iotengine.backfill/1"
MANIFEST = "_backfill.json"
ROW_GROUP_ROWS = 65_536


def part_name(partition: int) -> str:
    return f"part-{partition:05d}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class PartWriter:
    """Writes one partition's rows and states into a staging folder and commits them (see the module docstring)."""

    def __init__(self, root: str | os.PathLike, partition: int):
        self.root = Path(root)
        self.name = part_name(partition)
        self.partition = partition
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._data = self.root / "data" / f"{self.name}.parquet"
        self._tmp = self._data.with_name(f".{self.name}.parquet.tmp")
        self.rows = 0

    @property
    def committed(self) -> bool:
        return (self.root / "done" / f"{self.name}.json").exists()

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self._pending.append(table)
        self._pending_rows += table.num_rows
        while self._pending_rows >= ROW_GROUP_ROWS:
            self._flush(ROW_GROUP_ROWS)

    def commit(self, states: bytes | None, *, machines: int, late: int) -> dict:
        """Close the data file and write the states and the ``done`` record; returns the record."""
        if self._pending_rows:
            self._flush(self._pending_rows)
        record = {"partition": self.partition, "rows": self.rows, "machines": machines, "late": late}
        if self._writer is not None:
            self._writer.close()
            os.replace(self._tmp, self._data)
            record["data_sha256"] = sha256_file(self._data)
        if states is not None:
            path = self.root / "states" / f"{self.name}.snapshot"
            _write_atomic(path, states)
            record["states_sha256"] = hashlib.sha256(states).hexdigest()
        _write_atomic(self.root / "done" / f"{self.name}.json", json.dumps(record).encode())
        return record

    def _flush(self, rows: int) -> None:
        table = pa.concat_tables(self._pending, promote_options="none").combine_chunks()
        head, rest = table.slice(0, rows), table.slice(rows)
        if self._writer is None:
            self._tmp.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self._tmp, head.schema, compression="zstd")
        self._writer.write_table(head, row_group_size=ROW_GROUP_ROWS)
        self.rows += head.num_rows
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows


class Staging:
    """The staging folder of a job that writes ``output`` (and ``states``); see the module docstring."""

    def __init__(self, output: str | os.PathLike, states: str | os.PathLike | None = None):
        self.output = Path(output).absolute()
        self.states = None if states is None else Path(states).absolute()
        self.root = self.output.with_name(self.output.name + ".partial")
        for path, option in ((self.output, "--output"), (self.states, "--states")):
            if path is not None and path.exists() and not path.is_dir():
                raise InvalidInputError(f"{option} {path} is a file; backfill writes a folder there")

    def start(self, job: dict, *, resume: bool) -> set[int]:
        """Begin (or, with ``resume``, continue) the job; returns the partitions already committed."""
        job_file = self.root / "job.json"
        if resume and job_file.exists():
            staged = json.loads(job_file.read_text())
            if staged != job:
                changed = sorted(k for k in set(job) | set(staged) if job.get(k) != staged.get(k))
                raise StreamStateError(
                    f"{self.root} holds a job started with other {', '.join(changed)}; run again without --resume"
                )
            return self.committed()
        self.discard()
        for folder in ("data", "states", "done"):
            (self.root / folder).mkdir(parents=True)
        _write_atomic(job_file, json.dumps(job, sort_keys=True).encode())
        return set()

    def committed(self) -> set[int]:
        done = self.root / "done"
        return {int(p.stem.split("-")[1]) for p in done.glob("part-*.json")} if done.is_dir() else set()

    def records(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted((self.root / "done").glob("part-*.json"))]

    def write_states(self, name: str, states: bytes) -> None:
        _write_atomic(self.root / "states" / f"{name}.snapshot", states)

    def publish(self, manifest: dict) -> None:
        """Move the committed data (and states) into place, each folder by one rename."""
        data = self.root / "data"
        _write_atomic(data / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
        for tmp in data.glob(".*.tmp"):
            tmp.unlink()
        if self.states is not None:
            _replace_folder(self.root / "states", self.states)
        _replace_folder(data, self.output)
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _replace_folder(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".{target.name}.replaced-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(source, target)
    shutil.rmtree(old, ignore_errors=True)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
