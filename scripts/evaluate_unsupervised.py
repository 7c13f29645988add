"""The unsupervised detector against its goals, in one run: PR-AUC beside IsolationForest and the rolling z-score
rule on fleet data of other machines, on kaggle-mode data and on the real sample (with the two-sided ceiling);
then the fleet bundle's C library: the five regressors' size at -Os and the detector's ns per sample in C.

    python scripts/evaluate_unsupervised.py --out /tmp/unsupervised [--real ../shared/data/...sample.csv]

Prints Markdown tables and writes them, with the charts, into ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.edge import c_bench, detector_sizes_os, write_samples
from compile.edge import make
from engine.bundle.edge import export_bundle_c
from engine.data.synthetic import FLEET_INTERVAL_S, generate
from engine.models.detector_eval import evaluate_detectors
from engine.models.detector_report import detector_markdown, write_detector_report
from engine.models.fleet_bundle import HOLDOUT_MACHINES, TRAIN_MACHINES, TRAIN_STEPS, prepare_fleet_bundle

REAL_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "smart_manufacturing_sample.csv"
KAGGLE_ROWS = 20_000  # the default run's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--real", type=Path, default=REAL_SAMPLE, help="the real Kaggle sample")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    quiet = lambda _: None  # noqa: E731

    # Fleet: the run's fleet bundle (150 machines, its detector fitted and calibrated forward in time), scored on
    # other machines (HOLDOUT_MACHINES, as many steps); its C library holds the detector.
    bundle = prepare_fleet_bundle(out / "fleet", seed=args.seed, progress=quiet)
    fleet_rows = bundle.manifest["unsupervised_evaluation"]
    print(f"## Fleet: {TRAIN_MACHINES} machines x {TRAIN_STEPS} steps to fit and calibrate, {HOLDOUT_MACHINES} "
          "other machines to evaluate\n")  # fmt: skip
    print("| detector | PR-AUC | precision | recall | F1 | false alarms / machine-day |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in fleet_rows:
        print(
            f"| {row['detector']} | {row['pr_auc']:.3f} | {row['precision']:.3f} | {row['recall']:.3f} "
            f"| {row['f1']:.3f} | {row['false_alarms_per_machine_day']:.2f} |"
        )

    # Kaggle mode and the real sample: the main bundle's detector, on the run's training data.
    kaggle = generate(KAGGLE_ROWS, mode="kaggle", seed=args.seed)
    calibrate = np.random.default_rng(args.seed).random(kaggle.num_rows) < 0.2
    holdouts = {"kaggle-mode held out": generate(KAGGLE_ROWS // 5, mode="kaggle", seed=args.seed + 1)}
    if args.real.is_file():
        holdouts["real sample"] = args.real
    _, results, series = evaluate_detectors(kaggle, calibrate, holdouts, ceiling=tuple(holdouts), seed=args.seed)
    write_detector_report(results, series, out / "kaggle")
    print(f"\n## Kaggle mode: fitted on {KAGGLE_ROWS:,} generated rows\n")
    print("\n".join(detector_markdown(results)))

    # The C library of the fleet bundle, built here with the benchmark program.
    source = out / "fleet" / "c"
    export_bundle_c(bundle, source, progress=quiet)
    make(source, "iotengine_bench", compiler="gcc", opt="-O2")
    sizes = detector_sizes_os(source)
    table = generate(HOLDOUT_MACHINES * TRAIN_STEPS, machines=HOLDOUT_MACHINES, mode="fleet", seed=args.seed + 4,
                     interval_s=FLEET_INTERVAL_S)  # fmt: skip
    timing = c_bench(source, write_samples(table, out / "samples.bin"), 1_000_000)
    total = sizes["total"]["text"] + sizes["total"]["data"]
    print("\n## The detector in C (the fleet bundle's library)\n")
    print("| measure | value | goal |")
    print("| --- | --- | --- |")
    print(f"| five regressors, gcc -Os, text + data | {total:,} bytes | <= 65,536 |")
    print(f"| detector alone (5 regressors, residuals, score), median | {timing['unsupervised_ns_median']:,.0f} ns "
          "| <= 1,000 |")  # fmt: skip
    print(f"| iot_score (features, 5 tasks and the detector), median | {timing['score_ns_median']:,.0f} ns | |")


if __name__ == "__main__":
    main()
