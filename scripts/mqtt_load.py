"""The live MQTT path under load (bench/live_report.py, bench/mqtt_load.py): a local mosquitto, the scorer in its
own process, fleet telemetry published as single samples and as gateway arrays; capacity (a backlog drained) and
latency per sample (published at half the capacity), end to end.

    python scripts/mqtt_load.py --bundle artifacts/stream/bundle --rows 200000 --out /tmp/mqtt_load

Writes ``LIVE.md`` (the table), ``load.json`` and ``latency.png`` into ``--out``; the main job runs the same
at 20,000 samples (artifacts/stream/live/).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.live_report import live_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=Path("artifacts/stream/bundle"), help="a compiled bundle")
    parser.add_argument("--rows", type=int, default=200_000, help="samples per run")
    parser.add_argument("--batch", type=int, default=100, help="samples per gateway array in the batched runs")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = live_report(args.out, args.bundle, rows=args.rows, batch=args.batch)
    if result["missing"] is not None:
        raise SystemExit(f"mqtt_load: {result['missing']}")
    print((args.out / "LIVE.md").read_text())


if __name__ == "__main__":
    main()
