"""Every deployable form of one LightGBM model, built into a folder, with its size on disk.

``build_artifacts(booster, kind, folder)`` writes::

    model.txt                    LightGBM text (the reference)
    tl2cgen/ + tl2cgen.so        treelite + tl2cgen C sources and library (as ``iotengine compile`` builds it)
    tl2cgen.stripped.so          the same library after ``strip --strip-unneeded``
    uint8.c + uint8.so           the uint8-code trees (compile/uint8_trees.py), and stripped
    iot.c + iot.so               iotengine's own generated trees (compile/tree_codegen.py), and stripped
    model.fp32.onnx              onnxmltools export
    model.int8.onnx              GEMM form quantized by onnxruntime

(the tl2cgen and iot libraries and ONNX models of a bundle's model are the ones ``iotengine compile`` built, when
given) and
returns them loaded, ready to predict: :class:`compile.binding.NativeModel` for both libraries,
:class:`compile.onnx_export.OnnxModel` for both ONNX models.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb

from compile.binding import NativeModel
from compile.native import build_library, treelite_model
from compile.onnx_export import OnnxModel, lightgbm_onnx
from compile.onnx_gemm import gemm_model, quantize_int8
from compile.tl2cgen_source import NativeSources, generate_sources
from compile.tree_codegen import compile_forest_source, forest_source
from compile.uint8_trees import uint8_source

__all__ = ["ModelArtifacts", "Prebuilt", "build_artifacts"]


@dataclass
class ModelArtifacts:
    """Paths, sizes and loaded runners of one model's artifacts."""

    name: str
    kind: str
    booster: lgb.Booster
    folder: Path
    sizes: dict[str, int] = field(default_factory=dict)
    libraries: dict[str, Path] = field(default_factory=dict)  # runtime -> shared library with iot_predict
    native: dict[str, NativeModel] = field(default_factory=dict)
    onnx: dict[str, OnnxModel] = field(default_factory=dict)


def _strip(library: Path) -> Path:
    stripped = library.with_suffix(".stripped.so")
    shutil.copyfile(library, stripped)
    subprocess.run(["strip", "--strip-unneeded", str(stripped)], check=True, capture_output=True)
    return stripped


def _load(library: Path, kind: str) -> NativeModel:
    return NativeModel(library, hashlib.sha256(library.read_bytes()).hexdigest(), kind)


@dataclass(frozen=True)
class Prebuilt:
    """What ``iotengine compile`` already built of a bundle's LightGBM model: the same tl2cgen library and ONNX
    exports the suite would build, taken from the bundle's hash-checked files instead of being built again."""

    library: bytes
    sources: dict[str, bytes]  # file name -> bytes (the C files the library was built from)
    onnx_fp32: bytes
    onnx_int8: bytes
    gemm_fp32_bytes: int
    iot_library: bytes | None = None
    iot_source: bytes | None = None


def build_artifacts(
    name: str, booster: lgb.Booster, kind: str, folder: Path, prebuilt: Prebuilt | None = None
) -> ModelArtifacts:
    """Build every artifact of ``booster`` into ``folder`` (see the module docstring); ``prebuilt`` supplies the
    tl2cgen library and the ONNX models of a bundle's model."""
    folder.mkdir(parents=True, exist_ok=True)
    out = ModelArtifacts(name, kind, booster, folder)
    text = folder / "model.txt"
    # lleaves may be reading model.txt in the background (bench/suite.py writes it first): replace it whole.
    partial = folder / ".model.txt.partial"
    booster.save_model(str(partial))
    partial.replace(text)
    out.sizes["lightgbm_text"] = text.stat().st_size

    needs_model = prebuilt is None or prebuilt.iot_library is None
    model = treelite_model(text.read_bytes(), "lightgbm") if needs_model else None
    if prebuilt is None:
        sources = generate_sources(model, folder / "tl2cgen", round_float32=False)
        library = build_library(sources, folder / "tl2cgen.so")
        source_bytes = sum((sources.directory / f).stat().st_size for f in sources.files)
    else:
        (folder / "tl2cgen").mkdir(exist_ok=True)
        for file_name, data in prebuilt.sources.items():
            (folder / "tl2cgen" / file_name).write_bytes(data)
        library = folder / "tl2cgen.so"
        library.write_bytes(prebuilt.library)
        source_bytes = sum(len(data) for file_name, data in prebuilt.sources.items() if file_name.endswith(".c"))
    out.sizes["tl2cgen_c_sources"] = source_bytes
    out.sizes["tl2cgen_so"] = library.stat().st_size
    out.sizes["tl2cgen_so_stripped"] = _strip(library).stat().st_size
    out.libraries["native"] = library
    out.native["native"] = _load(library, kind)

    uint8_dir = folder / "uint8"
    uint8_dir.mkdir(exist_ok=True)
    (uint8_dir / "uint8.c").write_text(uint8_source(booster))
    uint8_library = build_library(NativeSources(uint8_dir, ("uint8.c",), ()), folder / "uint8.so")
    out.sizes["uint8_c_source"] = (uint8_dir / "uint8.c").stat().st_size
    out.sizes["uint8_so"] = uint8_library.stat().st_size
    out.sizes["uint8_so_stripped"] = _strip(uint8_library).stat().st_size
    out.libraries["uint8"] = uint8_library
    out.native["uint8"] = _load(uint8_library, kind)

    iot_library = folder / "iot.so"
    if needs_model:
        source = forest_source(model, round_float32=False)
        (folder / "iot.c").write_text(source)
        compile_forest_source(source, iot_library)
    else:
        (folder / "iot.c").write_bytes(prebuilt.iot_source or b"")
        iot_library.write_bytes(prebuilt.iot_library)
    out.sizes["iot_c_source"] = (folder / "iot.c").stat().st_size
    out.sizes["iot_so"] = iot_library.stat().st_size
    out.sizes["iot_so_stripped"] = _strip(iot_library).stat().st_size
    out.libraries["iot"] = iot_library
    out.native["iot"] = _load(iot_library, kind)

    if prebuilt is None:
        fp32 = lightgbm_onnx(booster).SerializeToString()
        gemm = gemm_model(booster)
        int8 = quantize_int8(gemm)
        gemm_bytes = gemm.ByteSize()
    else:
        fp32, int8, gemm_bytes = prebuilt.onnx_fp32, prebuilt.onnx_int8, prebuilt.gemm_fp32_bytes
    (folder / "model.fp32.onnx").write_bytes(fp32)
    (folder / "model.int8.onnx").write_bytes(int8)
    out.sizes["onnx_fp32"] = len(fp32)
    out.sizes["onnx_gemm_fp32"] = gemm_bytes
    out.sizes["onnx_int8"] = len(int8)
    out.onnx["onnx-fp32"] = OnnxModel(fp32, kind, name=f"{name}.fp32.onnx")
    out.onnx["onnx-int8"] = OnnxModel(int8, kind, name=f"{name}.int8.onnx")
    return out
