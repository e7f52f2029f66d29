"""``mcuflow build``: compile an export directory (the generated C library) with the firmware
for one board, using arm-none-eabi-gcc, and report flash/RAM use against the board's budget.

Outputs go to ``DIR/build/<board>/`` (firmware.elf/.bin/.hex/.map, the generated linker script
and board header, build.json), written in a temporary directory and renamed into place; the
latest build's report is also copied to ``DIR/build.json``. ``build_app`` is the compile-and-link
step on its own: any application's sources for a board, with or without a model (the kernel golden
tests build theirs with it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from mcuflow import atomic, imagecheck, paths
from mcuflow.boards import Board, load_board
from mcuflow.errors import ConfigError, ToolchainError

INSTALL_HINT = "install it with `apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi` (Debian/Ubuntu)"
APPS = ("protocol", "selftest")
# Sections placed in flash (their load image) and in RAM; .data is in both.
FLASH_SECTIONS = (".boot2", ".vectors", ".text", ".rodata", ".ARM.exidx", ".data")
RAM_SECTIONS = (".data", ".bss")
# Rough flash cost of everything but the model's weights, for the check before compiling.
FIRMWARE_FLASH_ESTIMATE = 3 * 1024
COMPILE_TIMEOUT = 120
# The model's kernels are the hot path: -O2 (BASE_CFLAGS), as is the counter that times them. Everything else
# runs once per frame or byte, so it is built for size, without turning loops into memcpy/memset calls (which
# would link the C library's); the protocol (app and link) is also optimised across its files (LTO), which
# lets the export's link settings fold into the code that uses them. Its objects appear as one component,
# "protocol", in the linker map.
SIZE_CFLAGS = ["-Os", "-fno-tree-loop-distribute-patterns"]
LTO_COMPONENTS = ("app", "link")
LTO_CFLAGS = ["-flto", "-ffat-lto-objects"]
LTO_LINK_FLAGS = ["-flto", "-Os", "-fno-tree-loop-distribute-patterns"]


def unit_flags(component: str) -> list[str]:
    """Extra compile flags of one firmware component (its folder: model, counter, app, link, core...)."""
    if component in ("model", "counter"):
        return []
    return SIZE_CFLAGS + (LTO_CFLAGS if component in LTO_COMPONENTS else [])


BASE_CFLAGS = [
    "-std=c99",
    "-O2",
    "-g",
    "-Wall",
    "-Wextra",
    "-ffunction-sections",
    "-fdata-sections",
    "-fno-common",
]


@dataclass
class BuildResult:
    board: Board
    out_dir: Path
    elf: Path
    report: dict[str, Any]

    @property
    def flash_bytes(self) -> int:
        return self.report["flash_bytes"]

    @property
    def ram_bytes(self) -> int:
        return self.report["ram_bytes"]

    def summary(self) -> str:
        r, b = self.report, self.board
        return (
            f"{b.name}: flash {r['flash_bytes']:,} / {b.flash_bytes:,} bytes ({100 * r['flash_bytes'] / b.flash_bytes:.1f}%), "
            f"RAM {r['ram_bytes']:,} / {b.ram_bytes:,} bytes ({100 * r['ram_bytes'] / b.ram_bytes:.1f}%) "
            f"+ {b.stack_bytes:,} stack"
        )


def find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolchainError(f"{name} not found on PATH; {INSTALL_HINT}")
    return path


def _run(cmd: list[str], what: str, timeout: float = COMPILE_TIMEOUT) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"{what} timed out after {timeout:.0f} s") from None
    return proc


def _first_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if re.search(r"error:", ln, re.IGNORECASE)]
    lines = lines or stderr.strip().splitlines() or ["?"]
    return lines[0].strip()


def app_sources(app: str) -> list[Path]:
    fw = paths.firmware_dir()
    if app == "selftest":
        return sorted((fw / "selftest").glob("*.c"))
    if app == "protocol":
        srcs = sorted((fw / "app").glob("*.c"))
        if not srcs:
            raise ConfigError("the protocol app (firmware/app/*.c) is not available; build with --app selftest")
        return srcs + sorted((fw / "link").glob("*.c"))
    raise ConfigError(f"unknown app {app!r}; choose one of {', '.join(APPS)}")


def check_export_dir(export_dir: Path) -> list[Path]:
    if not export_dir.is_dir():
        raise ConfigError(f"export directory not found: {export_dir}")
    if not (export_dir / "mcuflow_model.h").is_file():
        raise ConfigError(f"{export_dir} is not an mcuflow export (no mcuflow_model.h); run `mcuflow export` first")
    srcs = sorted(export_dir.glob("*.c"))
    if not srcs:
        raise ConfigError(f"{export_dir} holds no generated *.c files")
    return srcs


def estimate_fit(export_dir: Path, board: Board) -> dict[str, int] | None:
    """Check the manifest's constant and RAM figures against the board before compiling anything.

    A hand-written model library without ``export.json`` gets no estimate: the linker's check is the backstop."""
    from mcuflow.manifest import MANIFEST, ExportManifest

    if not (export_dir / MANIFEST).is_file():
        return None
    meta = ExportManifest.read(export_dir)
    weights, ram = meta.constant_bytes, meta.ram.static_bytes
    if weights > board.flash_bytes - board.boot2_bytes:
        raise ConfigError(
            f"the model does not fit {board.name}: its weights and constants alone take {weights:,} bytes, "
            f"the board has {board.flash_bytes:,} bytes of flash"
        )
    if ram + board.stack_bytes > board.ram_bytes:
        raise ConfigError(
            f"the model does not fit {board.name}: it needs {ram:,} bytes of static RAM plus a "
            f"{board.stack_bytes:,}-byte stack, the board has {board.ram_bytes:,} bytes of RAM"
        )
    return {"flash_bytes": weights + FIRMWARE_FLASH_ESTIMATE, "ram_bytes": ram}


def _firmware_templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(paths.firmware_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_port_files(board: Board, dest: Path) -> None:
    env = _firmware_templates()
    (dest / "linker.ld").write_text(env.get_template("linker.ld.j2").render(board=board))
    (dest / "board_config.h").write_text(env.get_template("board_config.h.j2").render(board=board))


def load_replay_inputs(path: str | Path, input_len: int) -> np.ndarray:
    """The int8 inputs of a flash-linked replay table: a .npy of shape (N, input_len) (or N * input_len)."""
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ConfigError(f"cannot read replay inputs from {path}: {err}") from None
    if not isinstance(a, np.ndarray) or a.dtype != np.int8 or a.size == 0 or a.size % input_len:
        what = "an .npz archive" if not isinstance(a, np.ndarray) else f"{a.dtype} of shape {a.shape}"
        raise ConfigError(f"{path} holds {what}; replay inputs are int8 (quantised), (N, {input_len})")
    return a.reshape(-1, input_len)


def render_replay_table(inputs: np.ndarray, dest: Path) -> Path:
    """The C file of a flash-linked input table (firmware/replay_table.c.j2) for ``inputs``."""
    from mcuflow.link.replay import table_bytes

    out = dest / "replay_table.c"
    data = table_bytes(inputs)
    text = (
        _firmware_templates()
        .get_template("replay_table.c.j2")
        .render(data=list(data), count=inputs.shape[0], input_len=inputs.shape[1])
    )
    out.write_text(text)
    return out


def section_sizes(elf: Path) -> dict[str, int]:
    proc = _run([find_tool("arm-none-eabi-size"), "-A", "-d", str(elf)], "arm-none-eabi-size")
    if proc.returncode != 0:
        raise ToolchainError(f"arm-none-eabi-size failed: {_first_error(proc.stderr)}")
    sizes = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


_MAP_ENTRY = re.compile(r"^ (\.\S+|COMMON)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")
_MAP_NAME_ONLY = re.compile(r"^ (\.\S+|COMMON)$")
_MAP_CONT = re.compile(r"^\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")
_MAP_OUTPUT = re.compile(r"^(\.\S+)(\s|$)")


def map_components(map_file: Path) -> dict[str, dict[str, int]]:
    """Flash/RAM bytes per component, from the linker map (objects are named `<component>-*.o`)."""
    comps: dict[str, dict[str, int]] = {}
    out_section = None
    started = False
    pending = None
    for line in map_file.read_text(errors="replace").splitlines():
        if not started:
            started = line.startswith("Linker script and memory map")
            continue
        m = _MAP_OUTPUT.match(line)
        if m:
            out_section = m.group(1)
            continue
        if pending is not None:
            c = _MAP_CONT.match(line)
            pending = None
            if c:
                _add_component(comps, out_section, int(c.group(2), 16), c.group(3))
            continue
        if _MAP_NAME_ONLY.match(line):
            pending = line
            continue
        e = _MAP_ENTRY.match(line)
        if e:
            _add_component(comps, out_section, int(e.group(3), 16), e.group(4))
    return comps


def _components(map_file: Path, sections: dict[str, int]) -> dict[str, dict[str, int]]:
    return map_components(map_file)


BOOT2_LOAD_ADDRESS = 0x20041F00  # where the RP2040 boot ROM copies the first 256 bytes of flash


def boot2_image(code: bytes) -> bytes:
    """A boot2 stage as the RP2040 boot ROM wants it: the code padded to 252 bytes, then the
    CRC-32/MPEG-2 of those 252 bytes, little-endian (RP2040 datasheet 2.8.1.3.1)."""
    if len(code) > 252:
        raise ToolchainError(f"the boot2 stage is {len(code)} bytes; the RP2040 boot ROM loads 252 + a 4-byte CRC")
    body = code + bytes(252 - len(code))
    return body + imagecheck.crc32_mpeg2(body).to_bytes(4, "little")


def build_boot2(board: Board, out_dir: Path, gcc: str, objcopy: str) -> Path:
    """Assemble the board's boot2 stage at the address the boot ROM runs it from, stamp its CRC
    and wrap the 256 bytes (firmware/boot2/slot.S) as an object whose section .boot2 the linker
    script puts first."""
    from mcuflow.boards import BOOT2_STAGES

    src = paths.firmware_dir() / BOOT2_STAGES[board.boot2]
    elf, raw, padded, obj = (out_dir / n for n in ("boot2.elf", "boot2.bin", "boot2.padded.bin", "boot2-stage.o"))
    link = [gcc, "-mcpu=cortex-m0plus", "-mthumb", "-nostdlib", "-nostartfiles"]
    link += [f"-Wl,-Ttext=0x{BOOT2_LOAD_ADDRESS:08X}", "-Wl,-e,boot2_entry", str(src), "-o", str(elf)]
    for cmd, what in (
        (link, f"assembling {src.name}"),
        ([objcopy, "-O", "binary", "-j", ".text", str(elf), str(raw)], "objcopy boot2"),
    ):
        proc = _run(cmd, what)
        if proc.returncode != 0:
            raise ToolchainError(f"{what} failed: {_first_error(proc.stderr)}")
    padded.write_bytes(boot2_image(raw.read_bytes()))
    slot = [gcc, *board.cflags(), f"-I{out_dir}", "-c", str(src.parent / "slot.S"), "-o", str(obj)]
    proc = _run(slot, "assembling the boot2 slot")
    if proc.returncode != 0:
        raise ToolchainError(f"assembling the boot2 slot failed: {_first_error(proc.stderr)}")
    for f in (elf, raw):
        f.unlink()
    return obj


def _component_of(obj: str) -> str:
    """Our objects are named `<component>-<source>.o`; archive members are the C library's; the link-time
    optimiser's output (``*.ltrans*.o``) holds the LTO components (app and link)."""
    name = Path(obj.split("(")[0]).name
    if ".ltrans" in name:
        return "protocol"
    if "(" in obj or name.startswith("lib"):
        return "libc"
    return name.split("-", 1)[0] if "-" in name else "other"


def _add_component(comps: dict, out_section: str | None, size: int, obj: str) -> None:
    if size == 0 or out_section is None:
        return
    entry = comps.setdefault(_component_of(obj), {"flash": 0, "ram": 0, "rodata": 0})
    if out_section in FLASH_SECTIONS:
        entry["flash"] += size
    if out_section == ".rodata":  # constants: for the model, its weights and quantisation tables
        entry["rodata"] += size
    if out_section in RAM_SECTIONS:
        entry["ram"] += size


def _compile(gcc: str, flags: list[str], src: Path, obj: Path) -> None:
    proc = _run([gcc, *flags, "-c", str(src), "-o", str(obj)], f"compiling {src.name}")
    if proc.returncode != 0:
        raise ToolchainError(f"compiling {src} failed: {_first_error(proc.stderr)}")


def _link_error(board: Board, stderr: str) -> Exception:
    if "mcuflow: RAM overflow" in stderr or "region `RAM' overflowed" in stderr:
        m = re.search(r"region `RAM' overflowed by (\d+) bytes", stderr)
        by = f" by {int(m.group(1)):,} bytes" if m else ""
        return ConfigError(
            f"the firmware does not fit {board.name}'s RAM{by}: .data + .bss + the "
            f"{board.stack_bytes:,}-byte stack exceed {board.ram_bytes:,} bytes"
        )
    if "mcuflow: flash overflow" in stderr or "region `FLASH' overflowed" in stderr:
        m = re.search(r"region `FLASH' overflowed by (\d+) bytes", stderr)
        by = f" by {int(m.group(1)):,} bytes" if m else ""
        return ConfigError(f"the firmware does not fit {board.name}'s {board.flash_bytes:,} bytes of flash{by}")
    return ToolchainError(f"linking failed: {_first_error(stderr)}")


@dataclass
class AppBuild:
    """What `build_app` leaves in its output directory: the linked firmware and its sizes."""

    elf: Path
    map_file: Path
    sections: dict[str, int]  # the flash and RAM sections' sizes
    flash_bytes: int
    ram_bytes: int
    cflags: list[str]  # the compile flags, without the include directories


def port_sources(board: Board) -> list[Path]:
    """The C files every app on `board` links: startup, main (which calls the app's mcuflow_serve) and the port."""
    fw = paths.firmware_dir()
    return [fw / "core" / "startup.c", fw / "core" / "main.c", fw / "core" / "platform.c"] + [
        fw / s for s in board.firmware_sources()
    ]


def build_app(
    board: str | Path | Board,
    sources: list[Path],
    include_dirs: list[Path],
    out_dir: str | Path,
    extra_cflags: tuple[str, ...] = (),
    *,
    jobs: int = 2,
    model_sources: tuple[Path, ...] | list[Path] = (),
) -> AppBuild:
    """Compile and link an application for `board` into `out_dir` (which must exist): the port
    (`port_sources`) and `sources` (objects named `<folder>-<file>.o`), preceded by a generated
    model's `model_sources` (`model-<file>.o`) if there is one. Writes firmware.elf/.bin/.hex/.map
    and the rendered linker.ld and board_config.h; the include path is `out_dir`, firmware/include,
    then `include_dirs`. Raises ToolchainError (compile, link) or ConfigError (it does not fit)."""
    board = board if isinstance(board, Board) else load_board(board)
    out_dir = Path(out_dir)
    gcc = find_tool("arm-none-eabi-gcc")
    objcopy = find_tool("arm-none-eabi-objcopy")
    render_port_files(board, out_dir)
    includes = [out_dir, paths.firmware_dir() / "include", *include_dirs]
    cflags = board.cflags() + BASE_CFLAGS + list(extra_cflags)
    flags = board.cflags() + BASE_CFLAGS + [f"-I{d}" for d in includes] + list(extra_cflags)
    units = [(s, out_dir / f"model-{s.stem}.o", flags) for s in model_sources]
    units += [
        (s, out_dir / f"{s.parent.name}-{s.stem}.o", flags + unit_flags(s.parent.name))
        for s in port_sources(board) + list(sources)
    ]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for fut in [pool.submit(_compile, gcc, f, s, o) for s, o, f in units]:
            fut.result()

    elf = out_dir / "firmware.elf"
    map_file = out_dir / "firmware.map"
    link = [gcc, *board.cflags(), "-nostartfiles", "--specs=nano.specs", f"-T{out_dir / 'linker.ld'}"]
    link += ["-Wl,--gc-sections", f"-Wl,-Map={map_file}", "-o", str(elf), *LTO_LINK_FLAGS]
    objects = [o for _, o, _ in units]
    if board.boot2:
        objects.insert(0, build_boot2(board, out_dir, gcc, objcopy))
    link += [str(o) for o in objects]
    proc = _run(link, "linking")
    if proc.returncode != 0:
        raise _link_error(board, proc.stderr)
    for fmt, suffix in (("binary", ".bin"), ("ihex", ".hex")):
        proc = _run([objcopy, "-O", fmt, str(elf), str(elf.with_suffix(suffix))], "objcopy")
        if proc.returncode != 0:
            raise ToolchainError(f"objcopy -O {fmt} failed: {_first_error(proc.stderr)}")

    for obj in objects:  # the map file keeps the per-object breakdown
        obj.unlink()
    sections = {k: v for k, v in section_sizes(elf).items() if k in FLASH_SECTIONS or k in RAM_SECTIONS}
    return AppBuild(
        elf=elf,
        map_file=map_file,
        sections=sections,
        flash_bytes=sum(sections.get(s, 0) for s in FLASH_SECTIONS),
        ram_bytes=sum(sections.get(s, 0) for s in RAM_SECTIONS),
        cflags=cflags,
    )


def build(
    export_dir: str | Path,
    board: str | Path | Board,
    *,
    app: str = "protocol",
    extra_cflags: tuple[str, ...] = (),
    jobs: int = 2,
    replay_inputs: np.ndarray | None = None,
    fragments: bool = True,
) -> BuildResult:
    """Build firmware for `board` from the export in `export_dir`. Raises McuflowError on user errors.

    `replay_inputs` ((N, input_len) int8) are linked into flash as the input table of sensor replay
    (a self-test of the deployed firmware: REPLAY runs them as its sensor's), component "replay".

    `fragments=False` leaves fragmented requests (INFER_PART / INFER_COMMIT) out of the protocol firmware:
    HELLO then clears capability bit 11, so the host sends whole frames only (docs/protocol.md)."""
    export_dir = Path(export_dir).resolve()
    board = board if isinstance(board, Board) else load_board(board)
    find_tool("arm-none-eabi-gcc")  # a missing toolchain is reported before anything else
    find_tool("arm-none-eabi-objcopy")
    model_srcs = check_export_dir(export_dir)
    app_srcs = app_sources(app)
    estimate = estimate_fit(export_dir, board)

    fw = paths.firmware_dir()
    build_root = export_dir / "build"
    build_root.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{board.name}.", dir=build_root))
    try:
        if not fragments:
            if app != "protocol":
                raise ConfigError(
                    "--no-fragments belongs to the protocol app (fragmented requests are protocol requests)"
                )
            extra_cflags = (*extra_cflags, "-DMCUFLOW_SERVE_FRAGMENTS=0")
        if replay_inputs is not None:
            if app != "protocol":
                raise ConfigError("--replay-inputs belongs to the protocol app (sensor replay is a protocol request)")
            (tmp / "replay").mkdir()
            app_srcs = [*app_srcs, render_replay_table(replay_inputs, tmp / "replay")]
            extra_cflags = (*extra_cflags, "-DMCUFLOW_REPLAY_LINKED=1")
        res = build_app(
            board,
            app_srcs,
            [export_dir, fw / "app", fw / "link"],
            tmp,
            extra_cflags,
            jobs=jobs,
            model_sources=model_srcs,
        )
        _check_replay_region(board, res.flash_bytes)
        # Static checks against the board file before anything is kept (mcuflow.imagecheck).
        checked = imagecheck.require_good_image(res.elf, board)
        report = {
            "board": board.name,
            "app": app,
            "fragments": fragments if app == "protocol" else None,
            "cpu": board.cpu,
            "counter_unit": board.counter.unit,
            "flash_bytes": res.flash_bytes,
            "ram_bytes": res.ram_bytes,
            "stack_bytes": board.stack_bytes,
            "sections": res.sections,
            "components": _components(res.map_file, res.sections),
            "budget": {"flash_bytes": board.flash_bytes, "ram_bytes": board.ram_bytes},
            "estimate": estimate,
            "cflags": res.cflags,
            "image_checks": checked.passed,
            "files": {"elf": "firmware.elf", "bin": "firmware.bin", "hex": "firmware.hex", "map": "firmware.map"},
        }
        text = json.dumps(report, indent=2) + "\n"
        (tmp / "build.json").write_text(text)

        final = build_root / board.name
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic.write_text(export_dir / "build.json", text)
    return BuildResult(board=board, out_dir=final, elf=final / "firmware.elf", report=report)


def _check_replay_region(board: Board, flash_used: int) -> None:
    """A replay region in flash (qemu-netduinoplus2's) must lie past the image, or the loader's input table
    would overwrite the firmware."""
    q = board.qemu
    if q is None or not q.replay_bytes:
        return
    end = board.flash_origin + flash_used
    if (
        board.flash_origin <= q.replay_addr < end
        or q.replay_addr <= board.flash_origin < q.replay_addr + q.replay_bytes
    ):
        raise ConfigError(
            f"the firmware ({flash_used:,} bytes of flash) reaches {board.name}'s replay region at "
            f"0x{q.replay_addr:08X}; move replay_addr in the board file"
        )


def _replace_dir(src: Path, dest: Path) -> None:
    """Put `src` at `dest`, replacing an older build without ever leaving a half-written one."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(dest, old)
    os.rename(src, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
