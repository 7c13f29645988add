"""Measurement scripts (run as ``python scripts/<name>.py``); the top layer: nothing imports them."""
