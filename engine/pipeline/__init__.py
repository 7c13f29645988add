"""The stages of `iotengine run` and the REPORT.md they write."""
