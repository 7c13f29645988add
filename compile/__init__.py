"""Model compilation: treelite/tl2cgen native libraries, ONNX export, C generation and cffi bindings."""
