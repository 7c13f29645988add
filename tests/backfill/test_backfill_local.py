"""The backfill core and the single-process engine against the single-process oracles: compute_features for the
features, a FeatureStream fed one sample at a time for the final states."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backfill.core import BackfillCore
from engine.backfill.job import BackfillRequest, backfill, read_backfill
from engine.backfill.sources import ORDER_COLUMNS, read_input, transport_schema
from engine.backfill.states import read_states
from engine.data.loading import save_telemetry
from engine.data.schema import SENSORS
from engine.errors import InvalidInputError, TelemetryError
from engine.features.batch import compute_features
from engine.features.snapshot import read_snapshot
from engine.stream.scorer import StreamScorer
from kernels.names import FEATURE_NAMES
from tests.backfill.history import oracle_features, oracle_states, oracle_table, skewed_history, write_history


def bits(values) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)


def feature_block(table: pa.Table) -> np.ndarray:
    return np.column_stack([table.column(name).to_numpy() for name in FEATURE_NAMES])


def assert_states_equal(states: bytes, stream) -> None:
    ids, fstate, istate, meta = read_snapshot(states)
    expected_f, expected_i = stream.state_arrays()
    order = np.argsort(np.asarray(stream.machines))
    assert ids == sorted(stream.machines)
    assert np.array_equal(bits(fstate), bits(expected_f[order]))
    assert np.array_equal(istate, expected_i[order])
    assert meta["late"] == stream.stats.late


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    folder = tmp_path_factory.mktemp("history")
    return write_history(skewed_history(np.random.default_rng(21)), folder / "input")


def test_local_backfill_gives_the_features_and_states_of_the_single_process_paths(history, tmp_path):
    result = backfill(BackfillRequest(input=history[0].parents[1], output=tmp_path / "out", states=tmp_path / "st"))
    out = read_backfill(tmp_path / "out")
    table, order = oracle_table(history)
    assert result.rows == out.num_rows == table.num_rows and result.late == 0
    assert np.array_equal(out.column("machine_id").to_numpy(), table.column("machine_id").to_numpy()[order])
    assert np.array_equal(bits(feature_block(out)), bits(oracle_features(history)))
    for label in ("anomaly_flag", "failure_type", "machine_status"):
        assert out.column(label).to_pylist() == table.column(label).take(order).cast(out.column(label).type).to_pylist()
    assert_states_equal(read_states(tmp_path / "st"), oracle_states(history))
    manifest = json.loads((tmp_path / "out" / "_backfill.json").read_text())
    assert manifest["engine"] == "local" and [p["path"] for p in manifest["inputs"]] == [str(p) for p in history]
    assert not (tmp_path / "out.partial").exists()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_the_core_gives_compute_features_bits_for_any_batch_boundaries(seed, cuts):
    table = skewed_history(np.random.default_rng(seed), rows=400)
    sorted_rows = table.take(np.lexsort((table.column("timestamp").cast(pa.int64()).to_numpy(),
                                         table.column("machine_id").to_numpy())))  # fmt: skip
    transport = _transport(sorted_rows)
    core = BackfillCore(["f"])
    bounds = sorted({0, *cuts, transport.num_rows})
    parts = [core.process(transport.slice(a, b - a)) for a, b in itertools.pairwise(bounds)]
    out = pa.concat_tables(parts)
    assert np.array_equal(bits(feature_block(out)), bits(compute_features(sorted_rows)))
    assert core.rows == 400 and len(core.machines) == len(np.unique(table.column("machine_id").to_numpy()))


def test_the_core_refuses_rows_out_of_order():
    table = skewed_history(np.random.default_rng(3), rows=50)
    core = BackfillCore(["f"])
    with pytest.raises(InvalidInputError, match=r"not in \(machine_id, timestamp\) order: machine"):
        core.process(_transport(table))
    assert core.rows == 0


def test_a_backfill_continues_from_initial_states_as_if_it_had_seen_the_whole_history(tmp_path):
    table = skewed_history(np.random.default_rng(5), rows=1_000)
    stamps = table.column("timestamp").cast(pa.int64()).to_numpy()
    cut = np.quantile(stamps, 0.6)
    early, late = table.filter(pa.array(stamps < cut)), table.filter(pa.array(stamps >= cut))
    gone = int(early.column("machine_id").to_numpy()[0])  # a machine whose history ends early
    late = late.filter(pa.array(late.column("machine_id").to_numpy() != gone))
    save_telemetry(early, tmp_path / "early.parquet")
    save_telemetry(late, tmp_path / "late.parquet")
    backfill(BackfillRequest(input=tmp_path / "early.parquet", output=tmp_path / "o1", states=tmp_path / "s1"))
    backfill(BackfillRequest(input=tmp_path / "late.parquet", output=tmp_path / "o2", states=tmp_path / "s2",
                             initial_states=tmp_path / "s1"))  # fmt: skip
    whole = pa.concat_tables([early, late])
    expected = compute_features(whole)[early.num_rows :]
    late_order = np.lexsort((np.arange(late.num_rows), late.column("timestamp").cast(pa.int64()).to_numpy(),
                             late.column("machine_id").to_numpy()))  # fmt: skip
    assert np.array_equal(bits(feature_block(read_backfill(tmp_path / "o2"))), bits(expected[late_order]))
    both = [tmp_path / "early.parquet", tmp_path / "late.parquet"]
    assert_states_equal(read_states(tmp_path / "s2"), oracle_states(both))
    assert sorted(p.name for p in (tmp_path / "s2").iterdir()) == ["initial-only.snapshot", "part-00000.snapshot"]


def test_rows_older_than_the_initial_states_are_late_not_applied(tmp_path):
    table = skewed_history(np.random.default_rng(8), rows=300)
    save_telemetry(table, tmp_path / "all.parquet")
    backfill(BackfillRequest(input=tmp_path / "all.parquet", output=tmp_path / "o1", states=tmp_path / "s1"))
    again = backfill(BackfillRequest(input=tmp_path / "all.parquet", output=tmp_path / "o2", states=tmp_path / "s2",
                                     initial_states=tmp_path / "s1"))  # fmt: skip
    oracle = oracle_states([tmp_path / "all.parquet"], initial=read_states(tmp_path / "s1"))
    assert again.late == oracle.stats.late > 0
    out = read_backfill(tmp_path / "o2")
    last = {}
    for m, t in zip(out.column("machine_id").to_pylist(), out.column("timestamp").cast(pa.int64()).to_pylist(),
                    strict=True):  # fmt: skip
        last[m] = max(last.get(m, t), t)
    features = feature_block(out)
    stamps = out.column("timestamp").cast(pa.int64()).to_numpy()
    ids = out.column("machine_id").to_numpy()
    before_last = stamps < np.array([last[m] for m in ids.tolist()])
    assert np.isnan(features[before_last]).all()
    assert_states_equal(read_states(tmp_path / "s2"), oracle)


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (
            lambda p: pq.write_table(_without(p, "pressure"), p / "b.parquet"),
            r"b\.parquet: missing required column\(s\) pressure",
        ),
        (lambda p: (p / "b.parquet").write_bytes(b"PAR1 not a parquet file"), r"b\.parquet: cannot read"),
        (lambda p: (p / "b.csv").write_text("timestamp,machine_id\n2025-01-01,1\n"), r"b\.csv: missing required"),
    ],
)
def test_bad_input_is_one_clear_error_before_any_output(tmp_path, write, message):
    good = skewed_history(np.random.default_rng(1), rows=100)
    (tmp_path / "in").mkdir()
    save_telemetry(good, tmp_path / "in" / "a.parquet")
    write(tmp_path / "in")
    with pytest.raises(TelemetryError, match=message):
        backfill(BackfillRequest(input=tmp_path / "in", output=tmp_path / "out", states=tmp_path / "st"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_a_bad_value_deep_in_a_file_names_its_row_and_leaves_no_output(tmp_path):
    (tmp_path / "in").mkdir()
    rows = ["timestamp,machine_id,temperature,vibration,humidity,pressure,energy_consumption,machine_status"]
    rows += [f"2025-01-01 00:{i:02d}:00,1,70,50,40,3,2,1" for i in range(50)]
    rows[31] = "2025-01-01 00:30:00,1,70,50,40,3,2,7"
    (tmp_path / "in" / "a.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(TelemetryError, match=r"a\.csv.*machine_status.*row 30"):
        backfill(BackfillRequest(input=tmp_path / "in", output=tmp_path / "out"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_read_states_refuses_a_machine_in_two_files_and_names_a_damaged_file(tmp_path, history):
    backfill(BackfillRequest(input=history[0], output=tmp_path / "o", states=tmp_path / "s"))
    part = tmp_path / "s" / "part-00000.snapshot"
    (tmp_path / "s" / "copy.snapshot").write_bytes(part.read_bytes())
    with pytest.raises(InvalidInputError, match="has states in two files"):
        read_states(tmp_path / "s")
    damaged = bytearray(part.read_bytes())
    damaged[len(damaged) // 2] ^= 1
    (tmp_path / "s" / "copy.snapshot").write_bytes(bytes(damaged))
    with pytest.raises(InvalidInputError, match=r"copy\.snapshot: "):
        read_states(tmp_path / "s")


def _without(folder, column):
    table = skewed_history(np.random.default_rng(2), rows=30)
    return table.drop_columns([column])


def _transport(table: pa.Table) -> pa.Table:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/t.parquet"
        save_telemetry(table, path)
        transport = read_input(path, 0, ())
    assert transport.schema.equals(transport_schema(())) and ORDER_COLUMNS[0] == "machine_id"
    return transport


def test_the_stream_warm_started_from_a_backfill_scores_as_the_whole_history(compiled, tmp_path):
    bundle = compiled[0]
    table = skewed_history(np.random.default_rng(12), rows=1_200)
    table = table.take(np.argsort(table.column("timestamp").cast(pa.int64()).to_numpy(), kind="stable"))
    history, live = table.slice(0, 800), table.slice(800)
    save_telemetry(history, tmp_path / "history.parquet")
    backfill(BackfillRequest(input=tmp_path / "history.parquet", output=tmp_path / "o", states=tmp_path / "s",
                             utc_offset_minutes=bundle.utc_offset_minutes))  # fmt: skip
    scorer = StreamScorer.restore(bundle, read_states(tmp_path / "s"), backend="c")
    sensors = np.column_stack([live.column(name).to_numpy() for name in SENSORS])
    got = scorer.score_batch(live.column("machine_id").to_numpy(), live.column("timestamp").cast(pa.int64()).to_numpy(),
                             sensors, live.column("machine_status").to_numpy())  # fmt: skip
    expected = bundle.predict(table, backend="lightgbm", models=scorer.models)
    assert scorer.last_late.size == 0
    for task in ("anomaly_flag", "maintenance_required", "downtime_risk", "predicted_remaining_life"):
        assert np.array_equal(bits(got[task]), bits(expected[task][800:])), task


def test_the_backfill_command_prints_what_it_wrote_and_refuses_scores_without_a_bundle(history, tmp_path, capsys):
    from engine.cli.commands import main

    folder = str(history[0].parents[1])
    assert (
        main(["backfill", "--input", folder, "--output", str(tmp_path / "out"), "--states", str(tmp_path / "s")]) == 0
    )
    printed = capsys.readouterr().out
    out = read_backfill(tmp_path / "out")
    machines = len(np.unique(out.column("machine_id").to_numpy()))
    assert f"backfill (local): features of {out.num_rows:,} rows of {machines} machines in 1 partition(s)" in printed
    assert main(["backfill", "--input", folder, "--output", str(tmp_path / "o2"), "--scores"]) == 1
    assert "--scores and --bundle go together" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()
