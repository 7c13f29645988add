"""Every field of a stream checkpoint is protected (issue 23): an edited position, output length or alert list is
refused, even when the editor recomputes the checkpoint's digest, and a resumed run must write the outputs the
checkpoint committed; refused resumes leave the committed rows as they were."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from engine.errors import StreamStateError
from engine.stream.replay import Replay, ReplayOptions
from engine.stream.sources import fleet_source

SOURCE = {"rows": 1_500, "machines": 6, "seed": 4, "late_rate": 0.01}


def _first_part(bundle, folder: Path, *, scores: bool = True) -> Path:
    state = folder / "state.json"
    Replay(
        bundle,
        fleet_source(**SOURCE),
        options=ReplayOptions(limit=1_000),
        state_path=state,
        scores_path=folder / "scores.csv" if scores else None,
        alerts_path=folder / "alerts.csv",
    ).run()
    return state


def _resume(bundle, folder: Path, *, scores: bool = True) -> Replay:
    return Replay(
        bundle,
        fleet_source(**SOURCE),
        state_path=folder / "state.json",
        scores_path=folder / "scores.csv" if scores else None,
        alerts_path=folder / "alerts.csv",
    )


def _edit(state: Path, change, *, redigest: bool) -> None:
    document = json.loads(state.read_text())
    change(document)
    if redigest:  # what someone who read engine/stream/checkpoint.py could do
        body = {k: v for k, v in document.items() if k != "sha256"}
        document["sha256"] = hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
    state.write_text(json.dumps(document))


def _set_position(value):
    def change(document):
        document["position"] = value

    return change


def _cut_scores(document):
    document["outputs"]["scores"]["bytes"] -= 1_000


def _garbage_alerts(document):
    document["alerts"] = [{"nonsense": 1}, 7]


@pytest.mark.parametrize(
    ("change", "redigest", "message"),
    [
        (_set_position(1_500), False, "does not match its sha256"),
        (_set_position(500), False, "does not match its sha256"),
        (_cut_scores, False, "does not match its sha256"),
        (_garbage_alerts, False, "does not match its sha256"),
        (_set_position(1_400), True, "position 1400 does not match the 1000 rows committed"),
        (_set_position(500), True, "position 500 does not match the 1000 rows committed"),
        (_cut_scores, True, "are not the scores the checkpoint committed"),
        (_garbage_alerts, True, r"checkpoint field 'alerts\[0\]' does not have the fields"),
    ],
)
def test_edited_checkpoint_fields_are_refused(compiled, tmp_path, change, redigest, message):
    bundle = compiled[0]
    state = _first_part(bundle, tmp_path)
    committed = (tmp_path / "scores.csv").read_bytes()
    _edit(state, change, redigest=redigest)
    with pytest.raises(StreamStateError, match=message):
        _resume(bundle, tmp_path)
    assert (tmp_path / "scores.csv").read_bytes() == committed


def test_damaged_committed_rows_are_refused(compiled, tmp_path):
    bundle = compiled[0]
    _first_part(bundle, tmp_path)
    scores = tmp_path / "scores.csv"
    data = bytearray(scores.read_bytes())
    data[len(data) // 2] ^= 0x01
    scores.write_bytes(bytes(data))
    with pytest.raises(StreamStateError, match="are not the scores the checkpoint committed"):
        _resume(bundle, tmp_path)
    scores.write_bytes(bytes(data[:-1_000]))
    with pytest.raises(StreamStateError, match=r"the checkpoint committed .* bytes of scores, but the file has"):
        _resume(bundle, tmp_path)


def test_a_resume_must_write_the_outputs_the_checkpoint_committed(compiled, tmp_path):
    bundle = compiled[0]
    _first_part(bundle, tmp_path, scores=False)
    with pytest.raises(StreamStateError, match="committed --alerts; this run asks for --alerts and --scores"):
        _resume(bundle, tmp_path, scores=True)
    assert not (tmp_path / "scores.csv").exists()
    other = tmp_path / "other"
    other.mkdir()
    _first_part(bundle, other)
    with pytest.raises(StreamStateError, match="committed --alerts and --scores; this run asks for --alerts"):
        _resume(bundle, other, scores=False)
    summary = _resume(bundle, other).run()  # the same outputs: continues to the end
    assert summary.position == SOURCE["rows"]
    assert len((other / "scores.csv").read_text().splitlines()) == SOURCE["rows"] + 1
