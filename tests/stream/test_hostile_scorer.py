"""Hostile input to the stream scorer and the edge library (issue 23): a batch with one bad timestamp is refused
whole on both backends, crafted states are refused before the C code can index outside a ring, absurd sensor
values are missing on every path, and no failure class is reported from NaN probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from engine.bundle.format import Bundle, TaskModel
from engine.data.synthetic import generate
from engine.errors import InvalidInputError
from engine.features.snapshot import read_snapshot, snapshot_bytes
from engine.models.cross_validation import fit_model
from engine.models.tasks import TASK_BY_NAME, inputs_and_targets
from engine.models.zoo import candidates
from engine.stream.scorer import StreamScorer
from kernels.state import F_WIDTH, I_COUNT, I_SAMPLES
from tests.oracles.features import bits
from tests.samples import fleet_with_bad_samples

BACKENDS = ("c", "python")
GOOD = np.array([[70.0, 50.0, 40.0, 3.0, 2.0]] * 3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "bad_timestamp",
    [np.datetime64("NaT"), np.iinfo(np.int64).min, 2**62 + 1],
    ids=["NaT", "INT64_MIN", "beyond-limit"],
)
def test_a_batch_with_one_bad_timestamp_is_refused_whole(compiled, backend, bad_timestamp):
    scorer = StreamScorer(compiled[0], backend=backend)
    scorer.score(1, 60, GOOD[0], 0)
    before = scorer.snapshot()
    if isinstance(bad_timestamp, np.datetime64):
        stamps = np.array([120, 180, 0], dtype="datetime64[s]")
        stamps[2] = bad_timestamp
    else:
        stamps = np.array([120, 180, bad_timestamp], dtype=np.int64)
    with pytest.raises(InvalidInputError, match="row 2"):
        scorer.score_batch([1, 1, 9], stamps, GOOD, [0, 0, 0])
    assert scorer.snapshot() == before and scorer.machines == (1,)
    scorer.score_batch([1, 1], [120, 180], GOOD[:2], [0, 0])  # the good rows, once
    assert scorer.stats.accepted == 3 and scorer.stats.late == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_rule_for_ids_and_timestamps_of_single_samples(compiled, backend):
    scorer = StreamScorer(compiled[0], backend=backend)
    with pytest.raises(InvalidInputError, match=r"machine_id must be an integer, not 7\.5"):
        scorer.score(7.5, 60, GOOD[0], 0)
    with pytest.raises(InvalidInputError, match="machine_ids: row 0: 18446744073709551615 does not fit in int64"):
        scorer.score_batch(np.array([2**64 - 1], dtype=np.uint64), [60], GOOD[:1], [0])
    for timestamp in (2**63 - 1, 2**63, -(2**63)):
        with pytest.raises(InvalidInputError, match=f"timestamp {timestamp} is beyond"):
            scorer.score(1, timestamp, GOOD[0], 0)
    assert scorer.machines == () and scorer.stats.accepted == 0


def _crafted(scorer: StreamScorer, field: int, value: int) -> bytes:
    """The scorer's snapshot with one counter changed and the digest recomputed, as a crafter would."""
    ids, fstate, istate, meta = read_snapshot(scorer.snapshot())
    istate[0, field] = value
    return snapshot_bytes(ids, fstate, istate, meta["utc_offset_minutes"], meta["late"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("field", "value"), [(I_COUNT, -1), (I_COUNT, -3), (I_SAMPLES, -1), (I_COUNT + 4, 99)])
def test_a_crafted_snapshot_cannot_reach_the_c_states(compiled, backend, field, value):
    scorer = StreamScorer(compiled[0])
    scorer.score_batch([5, 6], [60, 60], GOOD[:2], [0, 0])
    with pytest.raises(InvalidInputError, match="machine 5: impossible state"):
        StreamScorer.restore(compiled[0], _crafted(scorer, field, value), backend=backend)


def test_the_edge_library_refuses_impossible_states_without_touching_them(compiled):
    """iot_state_check and iot_features on a 0xFF-filled state and on negative or overflowing counters:
    IOT_ECORRUPT, and the state bytes unchanged."""
    from compile.edge_binding import STATUS
    from engine.bundle.edge import edge_library

    library = edge_library(compiled[0])
    states = library.new_states(4, 0)
    states[0] = -1  # every byte 0xFF
    ints = states[1:, F_WIDTH:]
    ints[0, I_COUNT] = -3
    ints[1, I_SAMPLES] = np.iinfo(np.int64).max
    ints[2, I_COUNT + 1] = 7  # above the samples (0)
    before = states.copy()
    out = np.empty(67)
    for k in range(4):
        assert library.state_status(states, k) == STATUS["IOT_ECORRUPT"]
        assert library.features(states, k, 60, GOOD[0], out) == STATUS["IOT_ECORRUPT"]
    assert np.array_equal(states, before)
    fresh = library.new_states(1, 0)
    assert library.state_status(fresh, 0) == STATUS["IOT_OK"]


def test_absurd_values_score_as_missing_on_every_path(compiled):
    bundle = compiled[0]
    ids, stamps, values, statuses = fleet_with_bad_samples(3_000, seed=31)
    absurd = np.abs(values) > 1e9
    absurd &= np.isfinite(values)
    assert absurd.sum() > 10
    as_nan = np.where(absurd, np.nan, values)
    for backend in BACKENDS:
        got = StreamScorer(bundle, backend=backend).score_batch(ids, stamps, values, statuses)
        expected = StreamScorer(bundle, backend=backend).score_batch(ids, stamps, as_nan, statuses)
        for name, column in expected.items():
            assert (
                np.array_equal(got[name], column)
                if column.dtype.kind == "U"
                else np.array_equal(bits(got[name]), bits(column))
            ), (backend, name)
        accepted = np.isfinite(got["anomaly_flag"])
        assert np.isfinite(got["failure_type_proba"][accepted]).all()
        assert (got["failure_type"][accepted] != "").all()


def test_no_failure_class_from_nan_probabilities(tmp_path):
    """A logistic regression given an infinite input (through predict_inputs, which takes any matrix) has NaN
    probabilities: the failure type is "" then, not the argmax of NaN ("Normal")."""
    X, y = inputs_and_targets(generate(3_000, seed=2))
    task = TASK_BY_NAME["failure_type"]
    model = fit_model(candidates("multiclass")["logistic_regression"], X, y[task.name])
    bundle = Bundle.write(tmp_path / "b", {task.name: TaskModel(task.name, "logistic_regression", model)})
    rows = X[:4].copy()
    rows[1, :5] = [np.inf, -np.inf, np.inf, -np.inf, np.inf]
    scores = bundle.predict_inputs(rows)
    assert np.isnan(scores["failure_type_proba"][1]).any()
    assert scores["failure_type"][1] == ""
    assert set(scores["failure_type"][[0, 2, 3]]) <= set(task.classes) - {""}
