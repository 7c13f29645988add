"""The machines the edge library is built for: the compiler and flags of each, and what the build makes there.

``host`` is the machine itself (gcc; a static and a shared library and the example program). The three Cortex-M
targets are microcontrollers without an operating system, built with Debian's arm-none-eabi-gcc (newlib): only
the static library, with the core's FPU flags. Their ``_many`` blocks are smaller (``IOT_MODEL_BLOCK``) because
their stacks are kilobytes.

>>> TARGETS["cortex-m4f"].flags
('-mcpu=cortex-m4', '-mthumb', '-mfloat-abi=hard', '-mfpu=fpv4-sp-d16')
>>> TARGETS["cortex-m4f"].double_fpu, TARGETS["cortex-m7"].double_fpu
(False, True)
"""

from __future__ import annotations

from dataclasses import dataclass

from compile.errors import CompileError

__all__ = ["REAL_WARNINGS", "TARGETS", "TARGET_NAMES", "EdgeTarget", "edge_target"]

# Float builds must have no implicit conversion between float and double (iotengine.h: iot_real).
REAL_WARNINGS = {"double": (), "float": ("-Wdouble-promotion", "-Wfloat-conversion")}


@dataclass(frozen=True)
class EdgeTarget:
    """One machine: its C compiler, its code-generation flags, whether it has an OS (``hosted``: shared library
    and example program), whether its FPU has double precision, and the rows per block of ``iot_score_many``."""

    name: str
    compiler: str
    flags: tuple[str, ...]
    hosted: bool
    double_fpu: bool
    model_block: int
    description: str


TARGETS = {
    target.name: target
    for target in (
        EdgeTarget("host", "gcc", (), True, True, 32, "this machine (gcc)"),
        EdgeTarget(
            "cortex-m0plus",
            "arm-none-eabi-gcc",
            ("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"),
            False,
            False,
            2,
            "Arm Cortex-M0+ (ARMv6-M, no FPU)",
        ),
        EdgeTarget(
            "cortex-m4f",
            "arm-none-eabi-gcc",
            ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
            False,
            False,
            4,
            "Arm Cortex-M4F (ARMv7E-M, single-precision FPU)",
        ),
        EdgeTarget(
            "cortex-m7",
            "arm-none-eabi-gcc",
            ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"),
            False,
            True,
            4,
            "Arm Cortex-M7 (ARMv7E-M, double-precision FPU)",
        ),
    )
}
TARGET_NAMES = tuple(TARGETS)


def edge_target(name: str) -> EdgeTarget:
    """The target called ``name``; CompileError naming the known ones otherwise."""
    if name not in TARGETS:
        raise CompileError(f"unknown edge target {name!r}; the targets are {', '.join(TARGET_NAMES)}")
    return TARGETS[name]
