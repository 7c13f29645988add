"""The ``iotengine`` command line: the parser (:mod:`engine.cli.parser`) and thin commands."""

from engine.cli.commands import main

__all__ = ["main"]
