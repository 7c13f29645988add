"""Time the foundation's hot spots and print a Markdown table (medians of --repeat runs, after a warm-up).

- loading a 1M-row Kaggle-format CSV with engine.data.loading.load_telemetry, against pandas.read_csv of the same file
  measured in the same run (pandas parses but validates nothing, so it is a floor to compare with);
- generating 10M rows in kaggle and fleet mode.

Usage: python scripts/measure_foundation.py [--csv-rows 1000000] [--gen-rows 10000000] [--repeat 3]
Needs the ``bench`` extra (pandas): pip install -e ".[bench]".
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.timing import median_seconds
from engine.data.loading import load_telemetry, write_kaggle_csv
from engine.data.synthetic import generate
from engine.optional import optional_import


def main() -> None:
    pd = optional_import("pandas", "bench", "the pandas.read_csv baseline")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv-rows", type=int, default=1_000_000)
    parser.add_argument("--gen-rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        csv_path = Path(folder) / "telemetry.csv"
        write_kaggle_csv(generate(args.csv_rows, seed=1), csv_path)
        size_mb = csv_path.stat().st_size / 1e6
        engine_load = median_seconds(lambda: load_telemetry(csv_path), args.repeat)
        pandas_load = median_seconds(lambda: pd.read_csv(csv_path), args.repeat)
    kaggle = median_seconds(lambda: generate(args.gen_rows, mode="kaggle"), args.repeat)
    fleet = median_seconds(lambda: generate(args.gen_rows, mode="fleet"), args.repeat)

    print("| what | median s | rows/s | vs pandas.read_csv |")
    print("| --- | --- | --- | --- |")
    print(
        f"| load_telemetry, {args.csv_rows:,}-row CSV ({size_mb:.0f} MB) | {engine_load:.3f} | "
        f"{args.csv_rows / engine_load:,.0f} | {pandas_load / engine_load:.1f}x as fast |"
    )
    print(
        f"| pandas.read_csv, same file (no validation) | {pandas_load:.3f} | "
        f"{args.csv_rows / pandas_load:,.0f} | 1.0x |"
    )
    print(f"| generate {args.gen_rows:,} rows, kaggle mode | {kaggle:.3f} | {args.gen_rows / kaggle:,.0f} | |")
    print(f"| generate {args.gen_rows:,} rows, fleet mode | {fleet:.3f} | {args.gen_rows / fleet:,.0f} | |")


if __name__ == "__main__":
    main()
