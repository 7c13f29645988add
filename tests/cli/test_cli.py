"""The ``iotengine`` command line: each command on small data, and errors as one clear line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from engine.cli.commands import main
from engine.data.loading import load_telemetry


def test_generate_parquet_and_csv(tmp_path, capsys):
    assert (
        main(
            [
                "generate",
                "--rows",
                "500",
                "--mode",
                "fleet",
                "--machines",
                "5",
                "--out",
                str(tmp_path / "f.parquet"),
            ]
        )
        == 0
    )
    assert pq.read_metadata(tmp_path / "f.parquet").num_rows == 500
    assert main(["generate", "--rows", "300", "--seed", "4", "--out", str(tmp_path / "k.csv")]) == 0
    text = (tmp_path / "k.csv").read_text().splitlines()
    assert text[0].startswith("timestamp,machine_id,temperature")
    assert len(text) == 301
    assert load_telemetry(tmp_path / "k.csv").num_rows == 300
    assert "wrote 300 kaggle rows" in capsys.readouterr().out


def test_eda_command(real_sample_path, tmp_path, capsys):
    assert main(["eda", "--data", str(real_sample_path), "--out", str(tmp_path / "eda")]) == 0
    assert (tmp_path / "eda" / "summary.md").is_file()
    assert "2,231 rows" in capsys.readouterr().out


def test_run_on_the_real_sample_writes_data_eda_and_report(main_job, real_sample_path):
    """The main job, on the real Kaggle sample in place of kaggle-mode data (CI runs it on the built-in synthetic
    data, as README's command does: between them both inputs run every stage)."""
    done, out = main_job
    assert done.returncode == 0, done.stderr[-3000:]
    stage_lines = done.stderr.splitlines()
    others = [line for line in stage_lines if not re.fullmatch(r"\[\d+/15\] [^:]+: .+, \d+\.\d s", line)]
    assert others == [], "\n".join(others)
    assert [line.split("]")[0] for line in stage_lines] == [f"[{k}/15" for k in range(1, 16)]
    assert stage_lines[0].startswith(f"[1/15] load {real_sample_path}: 2,231 rows, 50 machines, ")
    assert done.stdout.splitlines() == [
        f"wrote {out / 'REPORT.md'} in {done.stdout.split(' in ')[1].split()[0]} s (details in {out / 'run.log'})"
    ]
    log = (out / "run.log").read_text()
    assert "missing" in log  # the load report went to the log
    assert "== [8/15] build" in log and "native chosen/anomaly_flag" in log  # the details went to the log
    for noise in ("Treelite version", "Parallel compilation enabled", "pre-processing before quantization"):
        assert noise not in done.stdout + done.stderr + log, noise
    report = (out / "REPORT.md").read_text()
    for relative in (
        "data/kaggle.parquet",
        "data/fleet.parquet",
        "eda/kaggle/summary.md",
        "eda/fleet/correlation.png",
        "eda/kaggle/sensors_timeseries.png",
        "train/TRAINING.md",
        "train/bundle/bundle.json",
        "train/model_comparison.png",
        "train/ceilings.csv",
        "onnx/onnx_drift.csv",
        "score/SCORE.md",
        "score/scores_c.parquet",
        "run.log",
        "stream/STREAM.md",
        "stream/stream.png",
        "stream/alerts.csv",
        "stream/state.json",
        "backfill/BACKFILL.md",
        "stream/live/LIVE.md",
    ):
        assert (out / relative).stat().st_size > 0
        assert f"({relative})" in report
    links = re.findall(r"\]\(([^)]+)\)", report)
    assert len(links) > 20
    for relative in links:
        assert (out / relative).stat().st_size > 0, relative
    assert "## ONNX" in report and "| lightgbm | predicted_remaining_life | lightgbm | r2 |" in report
    assert "| chosen | anomaly_flag |" in report  # every chosen model has an ONNX export
    assert "## Batch scoring" in report and "| c |" in report
    # the dev extra installs pyspark: the backfill ran in one process and on Spark, both equal to the features
    assert "## Backfill" in report and "| spark local[2] |" in report
    backfill = (out / "backfill" / "BACKFILL.md").read_text()
    assert backfill.count("| yes |") == 2 and "**no**" not in backfill, backfill
    stream = (out / "stream" / "STREAM.md").read_text()
    for relative in re.findall(r"\]\(([^)]+)\)", stream):
        assert (out / "stream" / relative).stat().st_size > 0, relative
    summary = json.loads((out / "stream" / "summary.json").read_text())
    assert summary["finished"] and summary["position"] == 20_000
    # the machines started warm: their states carry the 600 earlier samples of each of the 50 machines
    assert summary["accepted"] + summary["late"] == 20_000 + 600 * 50
    assert summary["late"] > 0 and summary["machines"] == 50 and summary["backend"] == "c"
    scores = (out / "stream" / "scores.csv").read_text().splitlines()
    assert len(scores) == 20_001
    assert "## Streaming" in report and "| anomaly_flag |" in report
    assert "## Warm and cold starts" in stream and "| held-out fleet (seed 5) | cold |" in stream
    # the tests install mosquitto: the live stage ran, lost nothing, and scored the one-call scorer's bits
    live = json.loads((out / "stream" / "live" / "load.json").read_text())
    assert len(live) == 4 and [run["lost"] for run in live] == [0, 0, 0, 0]  # capacity and latency, two sizes
    assert all(run["samples_per_second"] > 0 for run in live) and live[1]["latency_us"]["p99"] > 0
    assert "scores identical to the one-call scorer: yes" in report
    assert load_telemetry(out / "data" / "fleet.parquet").num_rows == 3000
    assert load_telemetry(out / "data" / "kaggle.parquet").num_rows == 2231
    assert "smart_manufacturing_sample.csv" in (out / "eda" / "kaggle" / "summary.md").read_text()


def test_errors_are_one_line_and_exit_non_zero(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,machine_id\n2025-01-01 00:00:00,1\n")
    assert main(["eda", "--data", str(bad), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("iotengine: error: ") and "missing required column(s) 'temperature'" in err
    assert main(["generate", "--out", str(tmp_path / "x.txt")]) == 1
    assert "unknown output format" in capsys.readouterr().err


def test_console_script_is_installed(tmp_path):
    # pip puts console scripts beside the interpreter of the environment it installs into.
    script = str(Path(sys.executable).parent / "iotengine")
    done = subprocess.run(
        [script, "generate", "--rows", "50", "--out", str(tmp_path / "s.parquet")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    bad = subprocess.run([script, "generate", "--rows", "-3", "--out", "x.parquet"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "is not positive" in bad.stderr


def test_features_command(real_sample_path, tmp_path, capsys):
    import numpy as np

    from engine.features.batch import FEATURE_NAMES, compute_features

    out = tmp_path / "features.parquet"
    assert main(["features", "--data", str(real_sample_path), "--out", str(out), "--utc-offset-minutes", "60"]) == 0
    table = pq.read_table(out)
    assert table.num_rows == 2231
    assert set(FEATURE_NAMES) <= set(table.column_names)
    expected = compute_features(real_sample_path, utc_offset_minutes=60)
    np.testing.assert_array_equal(table.column("hour").to_numpy(), expected[:, FEATURE_NAMES.index("hour")])
    assert "wrote 67 features of 2,231 rows" in capsys.readouterr().out

    small = tmp_path / "features32.parquet"
    assert main(["features", "--data", str(real_sample_path), "--out", str(small), "--threads", "2", "--float32"]) == 0
    table = pq.read_table(small)
    assert table.schema.field("temp_roll_mean_5").type == "float"
    j = FEATURE_NAMES.index("temp_roll_mean_5")
    expected = compute_features(real_sample_path)[:, j].astype("f4")
    np.testing.assert_array_equal(table.column("temp_roll_mean_5").to_numpy(), expected)
    with pytest.raises(SystemExit):  # argparse: "argument --threads: 0 is not positive"
        main(["features", "--data", str(real_sample_path), "--out", str(small), "--threads", "0"])
    assert "--threads: 0 is not positive" in capsys.readouterr().err


def test_the_parsers_choices_are_the_compilers():
    # The parser keeps its choices as plain names (it must not import the compilers); they are the compilers' own.
    from compile.edge_models import TREE_FORMS
    from compile.tree_codegen import ISAS
    from engine.bundle.choices import EDGE_TREE_FORMS
    from engine.cli.parser import build_parser

    assert set(EDGE_TREE_FORMS) == set(TREE_FORMS)
    compile_parser = build_parser()._subparsers._group_actions[0].choices["compile"]
    isa = next(action for action in compile_parser._actions if action.dest == "isa")
    assert tuple(isa.choices) == ISAS
