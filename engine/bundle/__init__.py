"""The bundle format (models, hashes, manifest) and the steps that build its native, ONNX and edge libraries."""
