"""The command line checks its inputs before any work (issue 23): a bad --holdout, --data or --bundle fails at
once, with one line naming it, and writes nothing; --out in the wrong form is refused or honoured; seeds are
checked by the parser."""

from __future__ import annotations

import time

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from engine.cli.commands import main
from engine.data.loading import write_kaggle_csv
from engine.data.synthetic import generate
from engine.features.batch import compute_features
from kernels.names import FEATURE_NAMES


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory):
    return write_kaggle_csv(generate(400, seed=8), tmp_path_factory.mktemp("cli") / "small.csv")


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("iotengine: error: "), err
    return err


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--data", "{data}", "--out", "{out}", "--holdout", "nope.csv"],
        ["run", "--out", "{out}", "--rows", "3000", "--holdout", "nope.csv"],
        ["run", "--out", "{out}", "--rows", "3000", "--data", "nope.csv"],
        ["bench", "--bundle", "no-bundle", "--out", "{out}"],
        ["export-c", "--bundle", "no-bundle", "--out", "{out}"],
        ["score", "--bundle", "no-bundle", "--data", "{data}", "--out", "{out}/s.parquet"],
        ["eda", "--data", "nope.csv", "--out", "{out}"],
    ],
    ids=lambda command: " ".join(command[:1] + [a for a in command if "nope" in a or "no-bundle" in a]),
)
def test_a_missing_input_fails_at_once_and_writes_nothing(command, small_csv, tmp_path, capsys):
    out = tmp_path / "out"
    started = time.perf_counter()
    assert main([a.format(data=small_csv, out=out) for a in command]) == 1
    assert time.perf_counter() - started < 30  # before any training: a missing file is not found after minutes
    err = _one_error_line(capsys)
    assert "nope.csv" in err or "no-bundle" in err
    assert not out.exists()


def test_a_bad_holdout_file_is_refused_before_training(small_csv, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,machine_id\n2025-01-01 00:00:00,1\n")
    out = tmp_path / "out"
    assert main(["train", "--data", str(small_csv), "--out", str(out), "--holdout", str(bad)]) == 1
    assert "missing required column(s) 'temperature'" in _one_error_line(capsys)
    assert not out.exists()


def test_an_out_folder_that_is_a_file_is_named(small_csv, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["eda", "--data", str(small_csv), "--out", str(afile)]) == 1
    assert f"--out {afile} is a file; eda writes a folder there" in _one_error_line(capsys)
    assert afile.read_text() == "x"


def test_features_out_csv_is_csv_and_other_suffixes_are_refused(small_csv, tmp_path, capsys):
    out = tmp_path / "f.csv"
    assert main(["features", "--data", str(small_csv), "--out", str(out)]) == 0
    assert out.read_bytes()[:9] == b'"timestam'  # text, not Parquet bytes
    table = pacsv.read_csv(out)
    expected = compute_features(small_csv)
    for name in ("temp_roll_std_5", "vib_zscore_machine", "hour_sin"):
        np.testing.assert_array_equal(table.column(name).to_numpy(), expected[:, FEATURE_NAMES.index(name)])
    capsys.readouterr()
    assert main(["features", "--data", str(small_csv), "--out", str(tmp_path / "f.txt")]) == 1
    assert "unknown output format '.txt'; use .parquet or .csv" in _one_error_line(capsys)
    assert not (tmp_path / "f.txt").exists()
    assert main(["features", "--data", str(small_csv), "--out", str(tmp_path / "f.parquet")]) == 0
    assert pq.read_table(tmp_path / "f.parquet").num_rows == 400


@pytest.mark.parametrize("seed", ["-1", "2147483648", "abc"])
def test_seeds_are_checked_by_the_parser(seed, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--seed", seed, "--out", str(tmp_path / "g.parquet")])
    assert exit_info.value.code == 2
    assert "--seed" in capsys.readouterr().err
    assert not (tmp_path / "g.parquet").exists()


def test_a_changed_data_file_is_named_once_in_the_checkpoint_error(compiled, small_csv, tmp_path, capsys):
    data = tmp_path / "data.csv"
    data.write_bytes(small_csv.read_bytes())
    state = tmp_path / "state.json"
    base = ["stream", "--bundle", str(compiled[0].path), "--data", str(data), "--state", str(state), "--quiet"]
    assert main([*base, "--limit", "100"]) == 0
    capsys.readouterr()
    write_kaggle_csv(generate(400, seed=9), data)  # the same path, other rows
    assert main(base) == 1
    err = _one_error_line(capsys)
    assert f"{data.resolve()} has changed since the checkpoint was written" in err
    assert err.count(str(data.resolve())) == 1
