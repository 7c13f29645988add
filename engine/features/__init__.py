"""The 67 features: batch computation, the per-machine stream, its snapshots, the machine index."""
