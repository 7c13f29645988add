"""Shared fixtures. The real Kaggle sample is read from ../shared/data, never copied into the project."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLE = ROOT.parent / "shared" / "data" / "smart_manufacturing_sample.csv"

settings.register_profile("default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")


@pytest.fixture(scope="session")
def real_sample_path() -> Path:
    # Missing reference data is a broken checkout, not a reason to skip.
    assert REAL_SAMPLE.is_file(), f"the real sample is missing: {REAL_SAMPLE} (clone next to ../shared)"
    return REAL_SAMPLE


@pytest.fixture(scope="session")
def real_frame(real_sample_path):
    import pandas as pd

    return pd.read_csv(real_sample_path)
