"""Warm starts and the fleet bundle's observation windows: machines seeded from their history score exactly as
if the stream had watched them from the start, and training windows start where they say."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.data.synthetic import FLEET_INTERVAL_S, generate
from engine.models.fleet_bundle import observation_windows
from engine.stream.scorer import StreamScorer
from engine.stream.sources import ReplaySource, fleet_source, warm_states


def test_a_warm_start_scores_the_bits_of_a_stream_that_saw_the_history(compiled):
    bundle = compiled[0]
    source = fleet_source(1_500, machines=15, seed=12, late_rate=0.0, history_steps=80)
    assert source.history.num_rows == 80 * 15 and source.identity["history_steps"] == 80
    whole = ReplaySource.from_table(pa.concat_tables([source.history, _table_of(source)]), "whole", {})
    cold = StreamScorer(bundle).score_batch(whole.machine_ids, whole.timestamps, whole.sensors, whole.statuses)
    warm = StreamScorer.restore(bundle, warm_states(source.history, bundle.utc_offset_minutes)).score_batch(
        source.machine_ids, source.timestamps, source.sensors, source.statuses
    )
    tail = slice(source.history.num_rows, None)
    assert np.array_equal(whole.machine_ids[tail], source.machine_ids)
    assert np.array_equal(whole.timestamps[tail], source.timestamps)
    for name in ("anomaly_flag", "maintenance_required", "downtime_risk", "predicted_remaining_life"):
        assert np.array_equal(warm[name].view(np.uint64), cold[name][tail].view(np.uint64)), name
    fresh = StreamScorer(bundle).score_batch(source.machine_ids, source.timestamps, source.sensors, source.statuses)
    assert not np.array_equal(fresh["anomaly_flag"], warm["anomaly_flag"])  # the history matters


def _table_of(source: ReplaySource) -> pa.Table:
    history = source.history
    # the replay rows as a table of the history's schema: rebuild from the generator (time order, no late rows)
    full = generate(history.num_rows + source.rows, machines=15, mode="fleet", seed=12, interval_s=FLEET_INTERVAL_S)
    return full.slice(history.num_rows)


def test_observation_windows_start_at_zero_or_later_and_keep_their_length():
    machines, steps = 20, 30
    table = generate(machines * 2 * steps, machines=machines, mode="fleet", seed=3, interval_s=FLEET_INTERVAL_S)
    windows = observation_windows(table, machines, seed=1, steps=steps)
    ids = windows.column("machine_id").to_numpy()
    stamps = windows.column("timestamp").cast("int64").to_numpy()
    first = stamps.min()
    starts = []
    for machine in np.unique(ids):
        own = np.sort(stamps[ids == machine])
        assert own.shape[0] == steps and np.all(np.diff(own) == FLEET_INTERVAL_S)
        starts.append((own[0] - first) // FLEET_INTERVAL_S)
    starts = np.array(starts)
    assert 0 < np.count_nonzero(starts == 0) < machines and starts.max() <= steps
