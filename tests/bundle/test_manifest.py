"""bundle.json is protected and checked (issue 23): an edit after writing is refused by the manifest's own
digest; a malformed manifest (even one whose digest was recomputed) is one BundleError naming the field; the
thresholds compiled into the edge library must be the manifest's; a library is loaded from the verified bytes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.bundle.edge import edge_library
from engine.bundle.files import DIGEST_FIELD, manifest_digest
from engine.bundle.format import Bundle
from engine.errors import BundleError, CompileError


@pytest.fixture
def bundle_copy(compiled, tmp_path) -> Path:
    folder = tmp_path / "bundle"
    shutil.copytree(compiled[0].path, folder)
    return folder


def _edit(folder: Path, change, *, redigest: bool = True) -> None:
    path = folder / "bundle.json"
    manifest = json.loads(path.read_text())
    manifest = change(manifest) or manifest
    if redigest and isinstance(manifest, dict):
        manifest[DIGEST_FIELD] = manifest_digest(manifest)
    path.write_text(json.dumps(manifest, indent=1))


def test_the_written_manifest_carries_its_digest_and_loads(bundle_copy):
    manifest = json.loads((bundle_copy / "bundle.json").read_text())
    assert manifest[DIGEST_FIELD] == manifest_digest(manifest)
    assert Bundle.load(bundle_copy).thresholds == Bundle.load(bundle_copy).thresholds


def test_a_threshold_edited_by_hand_is_refused(bundle_copy):
    def change(m):
        m["tasks"]["anomaly_flag"]["threshold"] = 0.99

    _edit(bundle_copy, change, redigest=False)
    with pytest.raises(BundleError, match="manifest_sha256 does not match its contents"):
        Bundle.load(bundle_copy)


def test_thresholds_must_be_the_edge_librarys(bundle_copy):
    def change(m):
        for entry in m["tasks"].values():
            if entry["kind"] == "binary":
                entry["threshold"] = 0.99

    _edit(bundle_copy, change)  # digest recomputed: only the agreement with the library is left to refuse it
    with pytest.raises(BundleError, match="the edge library was compiled with the thresholds"):
        Bundle.load(bundle_copy)


def _remove_task_file(m):
    del m["files"][m["tasks"]["anomaly_flag"]["file"]]


def _family(m):
    m["tasks"]["downtime_risk"]["family"] = "random_forest"


def _unknown_family(m):
    m["tasks"]["downtime_risk"]["family"] = "xgboost"


def _columns(m):
    m["tasks"]["downtime_risk"]["columns"] = [0, 500]


def _edge_points_at_native(m):
    m["edge"]["library"] = next(f for f in m["files"] if f.startswith("native/") and f.endswith(".so"))


def _threshold_out_of_range(m):
    m["tasks"]["anomaly_flag"]["threshold"] = 1.5


def _offset(m):
    m["utc_offset_minutes"] = "UTC"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_remove_task_file, "tasks.anomaly_flag uses .*, which has no sha256 in 'files'"),
        (_family, "task 'downtime_risk': .* is not a random_forest model"),
        (_unknown_family, r"tasks.downtime_risk.family 'xgboost' is not one of"),
        (_columns, r"tasks.downtime_risk.columns must be distinct input indices"),
        (_edge_points_at_native, "edge.library must be edge/libiotengine.so"),
        (_threshold_out_of_range, r"tasks.anomaly_flag.threshold 1.5 is not a probability"),
        (_offset, r"field 'utc_offset_minutes' has the wrong type \(expected int\)"),
        (lambda m: [m], "a manifest is a JSON object, not a list"),
        (lambda m: {**m, "tasks": []}, r"field 'tasks' has the wrong type \(expected dict\)"),
        (lambda m: {k: v for k, v in m.items() if k != "files"}, "field 'files' is missing"),
    ],
)
def test_a_malformed_manifest_is_one_clear_error(bundle_copy, change, message):
    _edit(bundle_copy, change)
    with pytest.raises(BundleError, match=message):
        Bundle.load(bundle_copy)


def test_the_library_loaded_is_the_one_verified(compiled, bundle_copy):
    bundle = Bundle.load(bundle_copy)
    library = edge_library(bundle)  # loaded from a private copy of the verified bytes
    # replacing the file afterwards changes nothing already loaded, and a new load refuses the new bytes
    path = bundle_copy / bundle.edge.library
    native = next(p for p in (bundle_copy / "native").rglob("*.so"))
    shutil.copyfile(native, path)
    assert library.state_size == compiled[0].edge.state_bytes
    with pytest.raises(CompileError, match="sha256 differs"):
        edge_library(bundle)
