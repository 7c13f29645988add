"""Streaming: the scorer, alerts, replay sources, the replay loop, its outputs and checkpoints."""
