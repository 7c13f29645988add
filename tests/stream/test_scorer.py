"""The stream scorer through the edge library agrees with Bundle.predict and with the Python backend, and a
snapshot taken at any row continues with the same scores on either backend."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import LateSampleError
from engine.features.stream import FeatureStream
from engine.models.tasks import design_matrix
from engine.stream.scorer import StreamScorer
from tests.oracles.scores import assert_scores_close
from tests.oracles.ulp import TOLERANCE
from tests.samples import fleet_with_bad_samples, telemetry_arrays


def test_stream_scorer_rejects_late_and_bad_samples_by_name(compiled):
    scorer = StreamScorer(compiled[0])
    scorer.score(5, 2_000, [70.0, 50.0, 40.0, 3.0, 2.0], 1)
    with pytest.raises(LateSampleError, match="machine 5: timestamp 1000 is earlier than the last accepted 2000"):
        scorer.score(5, 1_000, [70.0, 50.0, 40.0, 3.0, 2.0], 1)
    snapshot = scorer.snapshot()
    with pytest.raises(ValueError, match="row 1: machine_status 7 is not 0, 1 or 2"):
        scorer.score_batch([5, 6], [3_000, 3_000], np.ones((2, 5)), [1, 7])
    with pytest.raises(ValueError, match="a sample is an integer timestamp, 5 sensor numbers"):
        scorer.score(5, 3_000, [70.0, 50.0], 1)
    assert scorer.snapshot() == snapshot  # nothing was applied
    assert scorer.stats.late == 1 and scorer.stats.accepted == 1 and scorer.machines == (5,)


def test_c_scores_match_bundle_predict_on_the_real_sample(compiled, real_sample_path):
    bundle, _, _ = compiled
    expected = bundle.predict(real_sample_path)
    scorer = StreamScorer(bundle)
    got = scorer.score_batch(*telemetry_arrays(real_sample_path))
    assert scorer.last_late.size == 0
    assert_scores_close(got, expected, TOLERANCE)
    assert len(set(expected["failure_type"])) > 1 or expected["anomaly_flag"].std() > 0


def test_c_scores_match_bundle_predict_on_fleet_rows_with_bad_samples(compiled, chosen_families):
    bundle, _, _ = compiled
    ids, stamps, values, statuses = fleet_with_bad_samples(100_000, seed=22)
    scorer = StreamScorer(bundle)
    got = scorer.score_batch(ids, stamps, values, statuses)
    # oracle: the Numba features in the same arrival order, then each model's own library
    stream = FeatureStream()
    features = stream.update_batch(ids, stamps, values)
    accepted = np.ones(len(ids), dtype=bool)
    accepted[stream.last_late] = False
    assert np.array_equal(scorer.last_late, stream.last_late) and stream.last_late.size > 500
    expected = bundle.predict_inputs(design_matrix(features[accepted], statuses[accepted]))
    assert_scores_close(got, expected, TOLERANCE, rows=accepted)
    assert np.isnan(got["anomaly_flag"][~accepted]).all() and (got["failure_type"][~accepted] == "").all()
    assert bundle.manifest["edge"]["tasks"]["maintenance_required"]["family"] == chosen_families["maintenance_required"]


def test_stream_scorer_backends_agree_one_sample_at_a_time(compiled):
    bundle, _, _ = compiled
    ids, stamps, values, statuses = fleet_with_bad_samples(400, seed=23)
    c, python = StreamScorer(bundle), StreamScorer(bundle, backend="python")
    for i in range(len(ids)):
        sample = (int(ids[i]), int(stamps[i]), values[i], int(statuses[i]))
        try:
            got = c.score(*sample)
        except LateSampleError:
            with pytest.raises(LateSampleError):
                python.score(*sample)
            continue
        expected = python.score(*sample)
        assert got["failure_type"] == expected["failure_type"]
        for name in ("anomaly_flag", "maintenance_required", "downtime_risk", "predicted_remaining_life"):
            assert abs(got[name] - expected[name]) <= TOLERANCE
        assert np.max(np.abs(got["failure_type_proba"] - expected["failure_type_proba"])) <= TOLERANCE
    assert c.stats == python.stats and c.stats.late > 0


@settings(max_examples=15)
@given(st.integers(1, 299), st.sampled_from(["c", "python"]))
def test_snapshot_and_restore_continue_with_the_same_scores(compiled, cut, restore_backend):
    bundle, _, _ = compiled
    ids, stamps, values, statuses = fleet_with_bad_samples(300, seed=24)
    whole = StreamScorer(bundle).score_batch(ids, stamps, values, statuses)
    first = StreamScorer(bundle)
    head = first.score_batch(ids[:cut], stamps[:cut], values[:cut], statuses[:cut])
    resumed = StreamScorer.restore(bundle, first.snapshot(), backend=restore_backend)
    tail = resumed.score_batch(ids[cut:], stamps[cut:], values[cut:], statuses[cut:])
    for name, column in whole.items():
        joined = np.concatenate([head[name], tail[name]])
        if name == "failure_type":
            assert (joined == column).all()
        else:
            assert np.allclose(joined, column, rtol=0, atol=TOLERANCE, equal_nan=True), name
    assert resumed.stats.accepted + resumed.stats.late == len(ids)
