"""Backfill: features, scores and final machine states of a whole history, in one process or on Apache Spark."""
