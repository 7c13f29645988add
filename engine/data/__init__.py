"""Telemetry: the schema, loading and validation, the synthetic fleet generator, exploratory analysis."""
