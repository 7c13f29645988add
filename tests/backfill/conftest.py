"""One local[2] Spark session for the Spark backfill tests (its JVM takes seconds to start)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark():
    from engine.backfill.spark_job import spark_session

    session = spark_session("local[2]", partitions=3, arrow_batch_rows=10_000)
    yield session
    session.stop()
