"""Shared helpers for the firmware tests (board files, fake model, QEMU self-test parsing)."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FAKE_MODEL_DIR = FIXTURES / "fake_model"
QEMU_BOARDS = ["qemu-mps2-an385", "qemu-mps2-an386", "qemu-mps2-an500", "qemu-netduinoplus2"]
HARDWARE_BOARDS = ["nucleo-f401re", "nucleo-f446re", "nucleo-h743zi", "nrf52840dk", "rpi-pico", "stm32f746g-disco"]
ALL_BOARDS = QEMU_BOARDS + HARDWARE_BOARDS


def load_fake_model():
    spec = importlib.util.spec_from_file_location("fake_model", FAKE_MODEL_DIR / "fake_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def copy_fake_export(dest: Path) -> Path:
    """A fresh copy of the hand-made export (builds write into the export directory)."""
    shutil.copytree(FAKE_MODEL_DIR, dest, ignore=shutil.ignore_patterns("build", "build.json", "*.py", "__pycache__"))
    return dest


def builtin_input(n: int) -> np.ndarray:
    """The input the self-test firmware runs at start (firmware/selftest/selftest.c)."""
    return np.array([((i * 73 + 19) % 256) - 128 for i in range(n)], dtype=np.int8)


def parse_fields(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", line))
