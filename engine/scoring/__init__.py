"""Batch scoring of telemetry files with a bundle, and the side-by-side backend comparison."""
