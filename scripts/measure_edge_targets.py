"""The edge library on microcontrollers, measured in one run: the flash budget on a Cortex-M4F (float), the
resource report of the four targets, float against double on the real sample and on fleet data, the arm-linux
build under qemu-arm, and emlearn and m2cgen beside iotengine. Prints Markdown tables; writes
edge_targets.json and EDGE_TARGETS.md into --out.

    python scripts/measure_edge_targets.py --bundle artifacts/train/bundle --data artifacts/data/kaggle.parquet \\
        --out /tmp/edge_targets [--budget 262144]

--data is the bundle's training telemetry (the refits and the CV scores of the budget use it); the peers need
the bench extra (pip install -e ".[bench]").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.edge_peers import peer_rows, peers_markdown
from bench.edge_targets import target_report, targets_markdown
from engine.bundle.flash_budget import export_for_budget
from engine.bundle.format import Bundle
from engine.data.loading import load_telemetry
from engine.data.synthetic import FLEET_INTERVAL_S, generate

REAL_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "smart_manufacturing_sample.csv"


def budget_markdown(document: dict) -> list[str]:
    lines = [
        f"## Flash budget: {document['budget_bytes']:,} bytes on {document['target']} ({document['real']})",
        "",
        f"The image takes {document['flash_bytes']:,} bytes ({document['fixed_bytes']:,} of them features, scoring, "
        f"detector, libm and libgcc). Cross-validated on {document['data']} ({document['cv']}).",
        "",
        "| task | score | picked | form | flash | CV score | full model | given up | tolerance | met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in document["tasks"]:
        lines.append(
            f"| {row['task']} | {row['score']} | {row['model']} | {row['form']} | {row['flash_bytes']:,} "
            f"| {row['cv_score']:.4f} | {row['full_cv_score']:.4f} | {row['given_up']:+.4f} | {row['tolerance']} "
            f"| {'yes' if row['within_tolerance'] else 'no'} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="the bundle's training telemetry")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", type=int, default=256 * 1024)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    bundle = Bundle.load(args.bundle)
    export_for_budget(bundle, args.out / "budget", budget=args.budget, target="cortex-m4f", real="float",
                      data=args.data, progress=print)  # fmt: skip
    budget = json.loads((args.out / "budget" / "FLASH_BUDGET.json").read_text())
    tables = {
        "real sample": load_telemetry(REAL_SAMPLE),
        "fleet": generate(20_000, mode="fleet", seed=11, interval_s=FLEET_INTERVAL_S),
    }
    report = target_report(bundle, args.out / "targets", tables, rows=None, progress=print)
    report["peers"] = peer_rows(load_telemetry(args.data))
    document = {"budget": budget, "targets": report, "seconds": time.perf_counter() - started}
    (args.out / "edge_targets.json").write_text(json.dumps(document, indent=1) + "\n")
    text = "\n".join(
        [*budget_markdown(budget), "", *targets_markdown(report), "", *peers_markdown(report["peers"]), ""]
    )
    (args.out / "EDGE_TARGETS.md").write_text(text)
    print(text)
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
