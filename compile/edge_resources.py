"""What the edge library costs a target: flash, RAM, stack, instructions per ``iot_score``, and the checks a
firmware build must pass (no allocator, no mutable globals, no recursion, static stack frames only).

:func:`measure_target` builds an exported tree (:func:`compile.edge.export_c`) for its target with ``-Os``
plus ``-fstack-usage -fcallgraph-info=su`` and links a minimal firmware image (compile/c/mcu_image.c: reset
handler, one state, ``iot_score`` and the state record functions, linked with ``--gc-sections`` and without
start files), then reads:

- flash: text + data of the image (``size``), and of each library object (``host``: no image, the objects);
- RAM: data + bss of the image (what libc or libgcc brings: the library has none), the state of a machine, the
  library's tables (read-only, in flash);
- stack: the worst path of the call graph (GCC's ``.ci`` files) from ``iot_score`` and from ``iot_score_many``;
  every frame must be static (no VLA, no alloca) and the graph acyclic. Functions of libm and libgcc have no
  call-graph file; they are named (``external``), their frames not counted.

:func:`qemu_instructions` counts the instructions of ``iot_score`` honestly where no board is at hand: the tree
built for arm-linux-gnueabihf (:func:`cross_host_build`) runs compile/c/count_iot.c under qemu-arm with one
instruction per translation block and the execution log on, for n and 2n samples; the difference over n is the
instructions of one call (ARMv7-A Thumb-2 with VFPv3-D16, which has double precision: for a Cortex-M4F double
build, whose doubles run in software, it is a lower bound).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from compile.edge_targets import edge_target
from compile.errors import CompileError

__all__ = [
    "ALLOCATORS",
    "CROSS_HOST",
    "StackReport",
    "allocator_symbols",
    "cross_host_build",
    "measure_target",
    "model_flash",
    "qemu_instructions",
    "worst_stack",
]

ALLOCATORS = ("malloc", "calloc", "realloc", "free", "_malloc_r", "_sbrk", "sbrk", "aligned_alloc")
CROSS_HOST = "arm-linux-gnueabihf-gcc"
MEASURE_FLAGS = "-Os -fstack-usage -fcallgraph-info=su -ffunction-sections -fdata-sections"
_NODE = re.compile(r'node: \{ title: "([^"]+)" label: "[^"]*?\\n[^"]*?(?:\\n(\d+) bytes \((\w+(?:,\w+)*)\))?"')
_EDGE = re.compile(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"')
_SIZE_LINE = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+[0-9a-f]+\s+(\S+)\s*$", re.MULTILINE)


def _run(command: list[str], cwd: Path | None = None, what: str = "") -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise CompileError(f"{what or command[0]} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return done.stdout


def _tool(name: str) -> str:
    if shutil.which(name) is None:
        raise CompileError(f"{name} is not installed (Debian: gcc-arm-none-eabi, gcc-arm-linux-gnueabihf, qemu-user)")
    return name


@dataclass(frozen=True)
class StackReport:
    """The worst stack from a root: its bytes, the path that reaches it, the callees without a call-graph file
    (libm, libgcc: not counted), and the functions whose frame is not static (must be empty)."""

    worst: int
    path: tuple[str, ...]
    external: tuple[str, ...]
    not_static: tuple[str, ...]


def _call_graph(directory: Path) -> tuple[dict[str, int], dict[str, set[str]], list[str]]:
    frames: dict[str, int] = {}
    edges: dict[str, set[str]] = {}
    not_static: list[str] = []
    for path in sorted(directory.glob("*.ci")):
        text = path.read_text()
        for title, size, kind in _NODE.findall(text):
            if size:
                frames[title] = int(size)
                if kind != "static":
                    not_static.append(f"{title} ({kind})")
        for source, target in _EDGE.findall(text):
            edges.setdefault(source, set()).add(target)
    return frames, edges, not_static


def worst_stack(directory: Path, root: str) -> StackReport:
    """The worst stack of ``root`` over the ``.ci`` files in ``directory``; CompileError on recursion."""
    frames, edges, not_static = _call_graph(Path(directory))
    if root not in frames:
        raise CompileError(f"{directory}: no call-graph node for {root} (built with -fcallgraph-info=su?)")
    best: dict[str, tuple[int, tuple[str, ...]]] = {}
    external: set[str] = set()

    def visit(name: str, active: tuple[str, ...]) -> tuple[int, tuple[str, ...]]:
        if name in active:
            raise CompileError(f"recursion in the edge library: {' -> '.join((*active, name))}")
        if name in best:
            return best[name]
        if name not in frames:
            external.add(name)
            return 0, ()
        deepest, tail = 0, ()
        for callee in sorted(edges.get(name, ())):
            depth, path = visit(callee, (*active, name))
            if depth > deepest:
                deepest, tail = depth, path
        best[name] = (frames[name] + deepest, (name, *tail))
        return best[name]

    worst, path = visit(root, ())
    return StackReport(worst, path, tuple(sorted(external)), tuple(not_static))


def _sizes(size_tool: str, files: list[str], cwd: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for text, data, bss, name in _SIZE_LINE.findall(_run([size_tool, *files], cwd=cwd, what=size_tool)):
        entry = out.setdefault(name, {"text": 0, "data": 0, "bss": 0})
        entry["text"] += int(text)
        entry["data"] += int(data)
        entry["bss"] += int(bss)
    return out


def allocator_symbols(nm_tool: str, path: Path) -> list[str]:
    """The allocator functions (:data:`ALLOCATORS`) that ``path`` defines or calls."""
    listing = _run([nm_tool, str(path)], what=nm_tool)
    names = {line.split()[-1] for line in listing.splitlines() if line.strip() and not line.endswith(":")}
    return sorted(names & set(ALLOCATORS))


def measure_target(directory: Path, target: str, library_sources: tuple[str, ...]) -> dict:
    """Build the exported tree in ``directory`` for ``target`` (its own flags, -Os) and measure it; see the
    module's docstring. Returns a JSON-ready dict."""
    machine = edge_target(target)
    directory = Path(directory)
    compiler = _tool(machine.compiler)
    cross = machine.compiler.removesuffix("gcc")
    size_tool, nm_tool = f"{cross}size" if cross else "size", f"{cross}nm" if cross else "nm"
    _run(["make", "-C", str(directory), "clean"], what="make clean")
    _run(["make", "-C", str(directory), "-j2", f"CFLAGS_OPT={MEASURE_FLAGS}", "libiotengine.a"], what="make")
    objects = [Path(name).with_suffix(".o").name for name in library_sources]
    per_object = _sizes(size_tool, objects, directory)
    library = {key: sum(per_object[o][key] for o in objects) for key in ("text", "data", "bss")}
    if machine.hosted:  # no firmware image: the library's own objects
        image_size, checked = dict(library), directory / "libiotengine.a"
    else:
        checked = directory / "mcu_image.elf"
        _run(["make", "-C", str(directory), f"CFLAGS_OPT={MEASURE_FLAGS}", checked.name], what="linking the image")
        image_size = _sizes(size_tool, [checked.name], directory)[checked.name]
    score = worst_stack(directory, "iot_score")
    many = worst_stack(directory, "iot_score_many")
    return {
        "target": machine.name,
        "description": machine.description,
        "compiler": _run([compiler, "-dumpfullversion"]).strip(),
        "flags": " ".join(machine.flags),
        "flash_bytes": image_size["text"] + image_size["data"],
        "image": image_size,
        "ram_static_bytes": image_size["data"] + image_size["bss"],
        "library": library,
        "library_objects": per_object,
        "stack_iot_score": score.worst,
        "stack_iot_score_path": list(score.path),
        "stack_iot_score_many": many.worst,
        "stack_external": sorted(set(score.external) | set(many.external)),
        "stack_not_static": list(score.not_static),
        "allocators": allocator_symbols(nm_tool, checked),
        "model_block": machine.model_block,
    }


def cross_host_build(directory: Path, programs: tuple[str, ...] = ("iotengine_example", "count_iot")) -> Path:
    """The exported tree in ``directory`` built for arm-linux-gnueabihf (static programs, -O2, the tree's flags
    otherwise) into ``directory/arm-linux``; returns that folder."""
    compiler = _tool(CROSS_HOST)
    directory = Path(directory)
    out = directory / "arm-linux"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    for path in directory.iterdir():
        if path.suffix in (".c", ".h") or path.name == "Makefile":
            shutil.copyfile(path, out / path.name)
    make = ["make", "-C", str(out), "-j2", f"CC={compiler}", "AR=arm-linux-gnueabihf-ar", "CFLAGS_TARGET=",
            "LDFLAGS=-static", *programs]  # fmt: skip
    _run(make, what=f"make with {compiler}")
    missing = [p for p in programs if not (out / p).exists()]
    if missing:
        raise CompileError(f"{out}: {', '.join(missing)} not built")
    return out


def _logged_instructions(program: Path, arguments: list[str]) -> int:
    qemu = _tool("qemu-arm")
    command = [qemu, "-singlestep", "-d", "exec,nochain", "-D", "/dev/stderr", str(program), *arguments]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as process:
        count = 0
        assert process.stderr is not None
        for chunk in iter(lambda: process.stderr.read(1 << 20), b""):
            count += chunk.count(b"Trace ")
    if process.returncode != 0:
        raise CompileError(f"{' '.join(command)} exited with {process.returncode}")
    return count


def qemu_instructions(arm_linux: Path, samples: Path, n: int = 50) -> float:
    """Instructions per ``iot_score`` of the arm-linux build in ``arm_linux`` (see the module's docstring)."""
    program = Path(arm_linux) / "count_iot"
    once = _logged_instructions(program, [str(samples), str(n)])
    twice = _logged_instructions(program, [str(samples), str(2 * n)])
    return (twice - once) / n


def model_flash(directory: Path, model_file_text: str, name: str = "budget_probe") -> int:
    """Flash (text + data, -Os) of one model file compiled in an exported tree ``directory`` with the tree's
    target flags: what that model adds to the library. Calls with different ``name`` may run side by side."""
    directory = Path(directory)
    cross = _make_compiler(directory).removesuffix("gcc")
    probe, obj = directory / f"{name}.c", directory / f"{name}.o"
    probe.write_text(model_file_text)
    try:
        _run(["make", "-C", str(directory), "CFLAGS_OPT=-Os", obj.name], what="compiling a model")
        sizes = _sizes(f"{cross}size" if cross else "size", [obj.name], directory)[obj.name]
    finally:
        probe.unlink(missing_ok=True)
        obj.unlink(missing_ok=True)
    return sizes["text"] + sizes["data"]


def _make_compiler(directory: Path) -> str:
    for line in (Path(directory) / "Makefile").read_text().splitlines():
        if line.startswith("CC = "):
            return line.split("=", 1)[1].strip()
    raise CompileError(f"{directory}/Makefile sets no CC")
