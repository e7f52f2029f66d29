"""A folder of class folders of PNG images: ``root/<class>/*.png``, the class index being the folder's
position in the sorted folder names (so ``0`` .. ``9`` are digits 0 .. 9; ``10`` sorts before ``2``).

With ``root/train/<class>/`` and ``root/test/<class>/`` the two splits are given; otherwise the
loader holds out a seeded test split. Every image must have the same size and be greyscale (one
channel, ``(H, W)``) or colour (``(H, W, 3)``, alpha dropped); mixing the two is refused rather than
guessed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mcuflow.data.checks import seeded_split
from mcuflow.data.dataset import DataSource, RawSplit
from mcuflow.errors import DataError

GREY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L")
COLOUR_MODES = ("RGB", "RGBA", "P", "LA", "PA", "CMYK", "YCbCr")


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def class_folders(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name)


def holds_class_folders(root: Path) -> bool:
    return bool(class_folders(root))


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.format != "PNG":
                raise DataError(f"{path} is a {im.format} image, not a PNG")
            if im.mode in GREY_MODES:
                a = np.asarray(im.convert("L") if im.mode == "1" else im)
            elif im.mode in COLOUR_MODES:
                a = np.asarray(im.convert("RGB"))
            else:
                raise DataError(f"{path} has the image mode {im.mode}, which mcuflow does not read")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path} is not a readable PNG image ({err})") from None
    return a


def _read_classes(root: Path, names: list[str] | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    folders = class_folders(root)
    if not folders:
        raise DataError(f"{root} has no class folders (expected {root}/<class>/*.png)")
    found = [f.name for f in folders]
    if names is None:
        names = found
    elif unknown := sorted(set(found) - set(names)):
        raise DataError(f"{root} has class folders the training split lacks: {', '.join(unknown)}")
    images, labels, first = [], [], None
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if _visible(p))
        others = [p.name for p in files if p.suffix.lower() != ".png" or not p.is_file()]
        if others:
            raise DataError(f"{folder} holds entries other than .png files: {', '.join(others[:3])} (only PNG is read)")
        if not files:
            raise DataError(f"class folder {folder} has no .png images")
        for path in files:
            a = _read_png(path)
            if first is None:
                first = (path, a.shape, a.dtype)
            elif (a.shape, a.dtype) != first[1:]:
                raise DataError(
                    f"images differ in size or kind: {first[0]} is {_kind(first[1], first[2])}, "
                    f"{path} is {_kind(a.shape, a.dtype)}; resize or convert them to one"
                )
            images.append(a)
            labels.append(names.index(folder.name))
    return np.stack(images), np.asarray(labels, dtype=np.int64), names


def _kind(shape: tuple[int, ...], dtype: np.dtype) -> str:
    colour = "colour" if len(shape) == 3 else "greyscale"
    return f"{shape[1]}x{shape[0]} {colour} ({np.dtype(dtype).itemsize * 8}-bit)"


def load_image_folder(root: str | os.PathLike) -> DataSource:
    root = Path(root)
    split_dirs = {p.name for p in class_folders(root)}
    if {"train", "test"} <= split_dirs:
        x, y, names = _read_classes(root / "train", None)
        xt, yt, _ = _read_classes(root / "test", names)
        if x.shape[1:] != xt.shape[1:] or x.dtype != xt.dtype:
            raise DataError(
                f"{root}: training images are {_kind(x.shape[1:], x.dtype)}, test images "
                f"{_kind(xt.shape[1:], xt.dtype)}"
            )
        train = RawSplit(x, y, f"PNG images in {root / 'train'}")
        test = RawSplit(xt, yt, f"PNG images in {root / 'test'}")
        notes: list[str] = []
    else:
        x, y, names = _read_classes(root, None)
        train, test, note = seeded_split(x, y, f"PNG images in {root}")
        notes = [note]
    return DataSource(root.name, str(root), train, test, classes=tuple(names), notes=notes)
