"""The MQTT message schema: every accepted form gives the sample the file loader would give, and every other
payload is refused with its kind, never another exception."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.stream.messages import MALFORMED_KINDS, MalformedMessage, parse_samples

SAMPLE = {
    "machine_id": 7,
    "timestamp": "2025-01-01T00:05:00Z",
    "temperature": 71.25,
    "vibration": 48,
    "humidity": None,
    "pressure": 3.1,
    "energy_consumption": 2.2,
    "machine_status": 1,
}


def payload(document) -> bytes:
    return json.dumps(document).encode()


def test_one_sample_and_an_array_of_samples():
    (sample,) = parse_samples(payload(SAMPLE))
    assert sample[:2] == (7, int(pd.Timestamp("2025-01-01T00:05:00Z").timestamp()))
    assert sample[2:4] == (71.25, 48.0) and math.isnan(sample[4]) and sample[5:] == (3.1, 2.2, 1)
    batch = parse_samples(payload([SAMPLE, {**SAMPLE, "machine_id": 8, "machine_status": "maintenance"}]))
    assert [s[0] for s in batch] == [7, 8] and batch[1][-1] == 2
    assert parse_samples(b"[]") == []


@pytest.mark.parametrize(
    "text",
    [
        "2025-03-01T12:34:56",
        "2025-03-01 12:34:56",
        "2025-03-01T12:34:56.999999Z",
        "2025-03-01T14:34:56.5+02:00",
        "1969-12-31T23:59:59.25Z",
        "2025-03-01T12:34:56-05:30",
    ],
)
def test_iso_timestamps_are_seconds_floored_as_pandas_floors_them(text):
    expected = pd.Timestamp(text)
    expected = (expected.tz_localize("UTC") if expected.tzinfo is None else expected).floor("s")
    (sample,) = parse_samples(payload({**SAMPLE, "timestamp": text}))
    assert sample[1] == expected.value // 10**9


@pytest.mark.parametrize(
    "value, seconds", [(1_735_689_600, 1_735_689_600), (1_735_689_600.75, 1_735_689_600), (-1.5, -2)]
)
def test_epoch_timestamps(value, seconds):
    assert parse_samples(payload({**SAMPLE, "timestamp": value}))[0][1] == seconds


@pytest.mark.parametrize(
    "raw, kind, words",
    [
        (b"{not json", "bad_json", "not UTF-8 JSON"),
        (b"\xff\xfe", "bad_json", "not UTF-8 JSON"),
        (b"42", "wrong_type", "a JSON object or an array"),
        (payload([SAMPLE, 5]), "wrong_type", "sample 1: a sample is a JSON object"),
        (payload({k: v for k, v in SAMPLE.items() if k != "vibration"}), "missing_field", "'vibration' is missing"),
        (payload([SAMPLE, {k: v for k, v in SAMPLE.items() if k != "machine_id"}]), "missing_field", "sample 1:"),
        (payload({**SAMPLE, "machine_id": "7"}), "wrong_type", "'machine_id' must be an integer"),
        (payload({**SAMPLE, "machine_id": 2**63}), "wrong_type", "within int64"),
        (payload({**SAMPLE, "machine_id": True}), "wrong_type", "'machine_id'"),
        (payload({**SAMPLE, "temperature": "hot"}), "wrong_type", "'temperature' must be a number or null"),
        (payload({**SAMPLE, "pressure": False}), "wrong_type", "'pressure'"),
        (payload({**SAMPLE, "timestamp": "yesterday"}), "wrong_type", "neither ISO 8601 text nor epoch seconds"),
        (payload({**SAMPLE, "timestamp": [1]}), "wrong_type", "'timestamp' must be"),
        (payload({**SAMPLE, "timestamp": 2**62 + 1}), "wrong_type", "beyond +-2**62"),
        (payload({**SAMPLE, "timestamp": math.inf}), "wrong_type", "not a finite number"),
        (payload({**SAMPLE, "machine_status": 3}), "unknown_status", "3 is not 0, 1 or 2"),
        (payload({**SAMPLE, "machine_status": "broken"}), "unknown_status", "'broken' is not one of"),
        (payload({**SAMPLE, "machine_status": 1.0}), "wrong_type", "'machine_status' must be"),
    ],
)
def test_malformed_messages_name_their_kind_and_field(raw, kind, words):
    with pytest.raises(MalformedMessage) as caught:
        parse_samples(raw)
    assert caught.value.kind == kind and words in caught.value.detail


def test_sensor_values_beyond_a_double_are_missing_not_an_error():
    (sample,) = parse_samples(payload({**SAMPLE, "temperature": 10**400, "vibration": -(10**400)}))
    assert sample[2] == math.inf and sample[3] == -math.inf


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)
fields = st.sampled_from(list(SAMPLE))


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=40),
        st.dictionaries(fields, json_values, max_size=8).map(lambda d: json.dumps({**SAMPLE, **d}).encode()),
    )
)
def test_any_payload_is_samples_or_a_named_refusal(raw):
    try:
        samples = parse_samples(raw)
    except MalformedMessage as bad:
        assert bad.kind in MALFORMED_KINDS
        return
    for sample in samples:
        assert type(sample[0]) is int and type(sample[1]) is int and sample[-1] in (0, 1, 2)
        assert all(type(v) is float for v in sample[2:7])
