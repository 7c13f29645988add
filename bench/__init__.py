"""Benchmark suites (pytest-benchmark) and the scripts that print their tables."""
