"""The batch driver: the table's columns as they are, machine slots and time order in one pass, and the feature
kernel over machines on several threads.

Each machine's features depend only on its own samples in time order, so machines are split between threads
(balanced by their row counts) and every thread runs :func:`kernels.step.drive_part` over the rows of its own
machines. The kernel releases the GIL; the threads share no state and write disjoint rows, so the result has the
bits of one thread, whatever the thread count.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa

from compile.errors import InvalidInputError
from kernels.history import N_HISTORY, replay_history
from kernels.machines import dense_slots, in_time_order
from kernels.names import N_FEATURES, SENSORS
from kernels.pages import touch_pages
from kernels.state import allocate
from kernels.step import drive_part
from kernels.zscore_rule import rolling_zscore_rule

__all__ = ["OUTPUT_DTYPES", "available_cores", "run_features", "run_history", "run_zscore_rule"]

OUTPUT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))

# Ids spanning at most this many values (or 4 per row) get slots from a lookup table; wider ones from np.unique.
DENSE_ID_SPAN = 1 << 22


def available_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_features(
    table: pa.Table, offset_s: int, *, threads=None, dtype=np.float64, out=None, by_feature: bool = False
) -> np.ndarray:
    """The 67 features of every row of a validated telemetry table, rows in input order.

    ``threads`` (default: all cores) is the most threads used; ``out``, if given, is written and returned.
    ``by_feature=True`` returns them as (67, n_rows) instead, each feature's values contiguous, so that they become
    Arrow columns without a copy; the kernel then writes 67 streams at once and takes longer than by rows.
    """
    n = table.num_rows
    threads = _requested_threads(threads)
    dtype = _output_dtype(dtype)
    fresh = out is None
    if by_feature:
        if not fresh:
            raise InvalidInputError("out and by_feature=True cannot be combined")
        result = np.empty((N_FEATURES, n), dtype=dtype)
        out = result.T
    else:
        result = out = _output(n, dtype, out)
    pages = result.reshape(-1)  # contiguous either way: no copy
    if n == 0:
        return result
    ids = _numpy_column(table, "machine_id", pa.int64())
    timestamps = _numpy_column(table, "timestamp", pa.int64())
    columns = tuple(_numpy_column(table, name, pa.float64()) for name in SENSORS)
    slots, machines = _machine_slots(ids)
    if in_time_order(slots, timestamps, machines):
        order = np.arange(n, dtype=np.int64)
    else:  # stable: equal timestamps of a machine keep their input order
        order = np.lexsort((timestamps, slots)).astype(np.int64)
    parts = min(threads, machines)
    owner = _share_machines(np.bincount(slots, minlength=machines), parts)
    fstate, istate = allocate(machines)
    status = np.zeros(n, dtype=np.int8)

    def touch(part: int) -> None:
        touch_pages(pages, pages.shape[0] * part // parts, pages.shape[0] * (part + 1) // parts)

    def run(part: int) -> None:
        drive_part(fstate, istate, order, slots, timestamps, columns, offset_s, out, status, owner, part)

    if parts == 1:
        run(0)
    else:
        with ThreadPoolExecutor(parts, thread_name_prefix="iotengine-features") as pool:
            if fresh:  # a fresh output: the OS maps and zeroes its pages on all threads, before any row
                list(pool.map(touch, range(parts)))
            list(pool.map(run, range(parts)))
    assert not status.any(), "samples in time order cannot be late"
    return result


def run_history(table: pa.Table) -> np.ndarray:
    """Each row's sensor history before it (:func:`kernels.history.replay_history` from empty states), shape
    (n, 10), rows in input order; machines and time order as :func:`run_features` applies them."""
    out = np.empty((table.num_rows, N_HISTORY))
    if table.num_rows:
        order, slots, machines, columns = _rows_by_machine(table)
        fstate, istate = allocate(machines)
        replay_history(fstate, istate, order, slots, columns, np.ones(table.num_rows, dtype=np.bool_), out)
    return out


def run_zscore_rule(table: pa.Table, window: int) -> np.ndarray:
    """The rolling z-score rule's score of each row (:func:`kernels.zscore_rule.rolling_zscore_rule`)."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 2:
        raise InvalidInputError(f"window must be an integer of at least 2, not {window!r}")
    out = np.empty(table.num_rows)
    if table.num_rows:
        rolling_zscore_rule(*_rows_by_machine(table), int(window), out)
    return out


def _rows_by_machine(table: pa.Table):
    """``(order, slots, machines, sensor columns)``: the rows machine by machine in time order, as the kernel."""
    ids = _numpy_column(table, "machine_id", pa.int64())
    timestamps = _numpy_column(table, "timestamp", pa.int64())
    columns = tuple(_numpy_column(table, name, pa.float64()) for name in SENSORS)
    slots, machines = _machine_slots(ids)
    if in_time_order(slots, timestamps, machines):
        order = np.arange(table.num_rows, dtype=np.int64)
    else:
        order = np.lexsort((timestamps, slots)).astype(np.int64)
    return order, slots, machines, columns


def _output_dtype(dtype) -> np.dtype:
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise InvalidInputError(f"dtype must be float64 or float32, not {dtype!r}") from None
    if dtype not in OUTPUT_DTYPES:
        raise InvalidInputError(f"dtype must be float64 or float32, not {dtype}")
    return dtype


def _output(n: int, dtype: np.dtype, out) -> np.ndarray:
    if out is None:
        return np.empty((n, N_FEATURES), dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise InvalidInputError(f"out must be a numpy array, not {type(out).__name__}")
    if out.shape != (n, N_FEATURES) or out.dtype != dtype or not out.flags.c_contiguous or not out.flags.writeable:
        raise InvalidInputError(
            f"out must be a writable C-contiguous {dtype} array of shape ({n}, {N_FEATURES}); "
            f"got {out.dtype} {out.shape}{'' if out.flags.c_contiguous else ', not C-contiguous'}"
            f"{'' if out.flags.writeable else ', read-only'}"
        )
    return out


def _numpy_column(table: pa.Table, name: str, kind: pa.DataType) -> np.ndarray:
    column = table.column(name)
    array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if array.type != kind:  # timestamp[s] shares int64's layout: a view, no copy
        array = array.view(kind)
    values = array.to_numpy(zero_copy_only=True)
    # Every column read-only, as Arrow's are, so the kernel is compiled once for one tuple type.
    values.flags.writeable = False
    return values


def _machine_slots(ids: np.ndarray) -> tuple[np.ndarray, int]:
    lowest, highest = int(ids.min()), int(ids.max())
    span = highest - lowest + 1  # Python ints: no overflow for ids across the whole int64 range
    if span <= max(DENSE_ID_SPAN, 4 * ids.shape[0]):
        slots = np.empty(ids.shape[0], dtype=np.int64)
        machines = dense_slots(ids, lowest, span, slots)
        return slots, int(machines)
    unique, slots = np.unique(ids, return_inverse=True)
    return slots.astype(np.int64).reshape(-1), int(unique.shape[0])


def _requested_threads(threads) -> int:
    if threads is None:
        return available_cores()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise InvalidInputError(f"threads must be a positive integer, not {threads!r}")
    return int(threads)


def _share_machines(rows_per_machine: np.ndarray, parts: int) -> np.ndarray:
    """The part of each machine: consecutive slots, cut where the running row count crosses each 1/parts.

    Consecutive, because machines of one part then have neighbouring state rows: parts that interleaved slots
    would write the same cache lines of the state on every sample.
    """
    if parts == 1:
        return np.zeros(rows_per_machine.shape[0], dtype=np.int64)
    before = np.cumsum(rows_per_machine) - rows_per_machine  # rows of the machines with lower slots
    owner = (before * parts) // max(1, int(rows_per_machine.sum()))
    return np.minimum(owner, parts - 1).astype(np.int64)
