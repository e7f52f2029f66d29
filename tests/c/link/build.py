"""Builds the host-side C test programs of the link (used by tests/test_protocol_c.py and
tests/test_run_cli.py): the device's serve loop over stdin/stdout with a fake head, and
a codec driver. Not a test module."""

from __future__ import annotations

import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1", "-g"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
INCLUDES = [
    f"-I{ROOT / 'firmware' / 'link'}",
    f"-I{ROOT / 'firmware' / 'include'}",
    f"-I{HERE}",
    f"-I{HERE / 'fake_model'}",
]
LINK_C = ROOT / "firmware" / "link" / "mcuflow_link.c"
SERVE_C = ROOT / "firmware" / "app" / "serve.c"


def compile_program(
    out: Path, sources: list[Path], cc: str = "gcc", sanitize: bool = False, extra: list[str] | None = None
) -> Path:
    cmd = [cc, *FLAGS, *(SANITIZE if sanitize else []), *(extra or []), *INCLUDES, *map(str, sources), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{proc.stderr}")
    return out


def build_device(out_dir: Path, cc: str = "gcc", sanitize: bool = False) -> Path:
    name = f"fake_device_{cc}{'_san' if sanitize else ''}"
    srcs = [LINK_C, SERVE_C, HERE / "fake_head.c", HERE / "host_platform.c"]
    return compile_program(out_dir / name, srcs, cc, sanitize)


def build_codec(out_dir: Path, cc: str = "gcc", sanitize: bool = False) -> Path:
    name = f"codec_{cc}{'_san' if sanitize else ''}"
    return compile_program(out_dir / name, [LINK_C, HERE / "codec_main.c"], cc, sanitize)
