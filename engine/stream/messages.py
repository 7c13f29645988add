"""Telemetry as MQTT messages: the JSON schema ``iotengine stream --mqtt`` reads, and its parser.

A message's payload is UTF-8 JSON: one sample as an object, or an array of such objects (what a gateway sends
when it forwards several samples at once)::

    {"machine_id": 7, "timestamp": "2025-01-01T00:05:00Z", "temperature": 71.2, "vibration": 48.0,
     "humidity": 41.5, "pressure": 3.1, "energy_consumption": 2.2, "machine_status": 1}

- ``machine_id``: an integer within int64.
- ``timestamp``: epoch seconds (an integer, or a number whose fraction is floored) or ISO 8601 text (a fraction of
  a second is floored; without a zone it is UTC), as the file loader reads timestamps.
- the five sensors (``temperature``, ``vibration``, ``humidity``, ``pressure``, ``energy_consumption``): numbers,
  or ``null`` for a missing value (spec: missing samples).
- ``machine_status``: 0, 1, 2 or its name (``"idle"``, ``"running"``, ``"maintenance"``).
- Other fields are ignored. The topic does not name the machine: ``machine_id`` does.

A message is all or nothing: if any sample in it is malformed, the whole message is rejected with one of the
:data:`MALFORMED_KINDS` and none of its samples reaches a machine's state.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

from engine.data.schema import MACHINE_STATUSES, SENSORS
from engine.errors import InvalidInputError
from engine.features.inputs import TIMESTAMP_LIMIT

__all__ = ["MALFORMED_KINDS", "MalformedMessage", "parse_samples"]

MALFORMED_KINDS = ("bad_json", "missing_field", "wrong_type", "unknown_status")
FIELDS = ("machine_id", "timestamp", *SENSORS, "machine_status")
STATUS_CODES = {name: code for code, name in MACHINE_STATUSES.items()}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
NAN = float("nan")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
SECOND = timedelta(seconds=1)


class MalformedMessage(InvalidInputError):
    """A message that is not telemetry; ``kind`` is one of :data:`MALFORMED_KINDS`."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def parse_samples(payload: bytes) -> list[tuple]:
    """The samples of one message, each ``(machine_id, timestamp_s, t, v, h, p, e, machine_status)``.

    Raises
    ------
    MalformedMessage
        Naming the kind, the sample's index in an array and the field.
    """
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedMessage("bad_json", f"not UTF-8 JSON ({exc})") from None
    if type(document) is dict:
        return [_sample(document, "")]
    if type(document) is list:
        return [_sample(entry, f"sample {k}: ") for k, entry in enumerate(document)]
    raise MalformedMessage(
        "wrong_type", f"a message is a JSON object or an array of them, not {type(document).__name__}"
    )


def _sample(entry, where: str) -> tuple:
    if type(entry) is not dict:
        raise MalformedMessage("wrong_type", f"{where}a sample is a JSON object, not {type(entry).__name__}")
    try:
        machine = entry["machine_id"]
        timestamp = entry["timestamp"]
        values = [entry[name] for name in SENSORS]
        status = entry["machine_status"]
    except KeyError as exc:
        raise MalformedMessage("missing_field", f"{where}field {exc.args[0]!r} is missing") from None
    if type(machine) is not int or not INT64_MIN <= machine <= INT64_MAX:
        raise MalformedMessage("wrong_type", f"{where}'machine_id' must be an integer within int64, not {machine!r}")
    seconds = _seconds(timestamp, where)
    for k, value in enumerate(values):
        kind = type(value)
        if kind is float:
            continue
        if kind is int:
            values[k] = float(value) if -(2**1023) < value < 2**1023 else (math.inf if value > 0 else -math.inf)
        elif value is None:
            values[k] = NAN
        else:
            raise MalformedMessage("wrong_type", f"{where}{SENSORS[k]!r} must be a number or null, not {value!r}")
    kind = type(status)
    if kind is int:
        if status not in MACHINE_STATUSES:
            raise MalformedMessage("unknown_status", f"{where}'machine_status' {status} is not 0, 1 or 2")
    elif kind is str:
        code = STATUS_CODES.get(status)
        if code is None:
            raise MalformedMessage(
                "unknown_status", f"{where}'machine_status' {status!r} is not one of {sorted(STATUS_CODES)}"
            )
        status = code
    else:
        raise MalformedMessage("wrong_type", f"{where}'machine_status' must be 0, 1, 2 or a name, not {status!r}")
    return (machine, seconds, *values, status)


def _seconds(timestamp, where: str) -> int:
    kind = type(timestamp)
    if kind is int:
        seconds = timestamp
    elif kind is float:
        if not math.isfinite(timestamp):
            raise MalformedMessage("wrong_type", f"{where}'timestamp' {timestamp!r} is not a finite number")
        seconds = math.floor(timestamp)
    elif kind is str:
        try:
            moment = datetime.fromisoformat(timestamp)
        except ValueError:
            raise MalformedMessage(
                "wrong_type", f"{where}'timestamp' {timestamp!r} is neither ISO 8601 text nor epoch seconds"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        seconds = (moment - EPOCH) // SECOND  # exact: a float timestamp() could round a fraction up
    else:
        raise MalformedMessage(
            "wrong_type", f"{where}'timestamp' must be ISO 8601 text or epoch seconds, not {timestamp!r}"
        )
    if not -TIMESTAMP_LIMIT <= seconds <= TIMESTAMP_LIMIT:
        raise MalformedMessage("wrong_type", f"{where}'timestamp' {timestamp!r} is beyond +-2**62 seconds")
    return seconds
