"""Dataclasses to and from JSON values, checked against their type hints.

One field is one key of the same name; a nested dataclass is a nested object. The hints this
understands: ``int``, ``float`` (an integer is accepted and kept as it is), ``str``, ``bool``,
``X | None``, ``list[X]``, ``dict[str, X]``, ``Any`` (taken as it is) and dataclasses. A class whose
JSON is not one key per field (a flattened family of counters, say) defines ``to_json(self)`` and a
classmethod ``from_json(cls, value, where)``; :func:`dump_fields` and :func:`load_fields` are the
default behaviour for it to build on.

Reading is strict: a missing field, an unknown key or a value of the wrong type raises
:class:`ShapeError` naming where in the document it is (``link_compression.offloads``), so a caller
can turn any malformed file into one line.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any

import numpy as np


class ShapeError(ValueError):
    """A JSON value that does not fit the dataclass it is read into."""


def dump(value: Any) -> Any:
    """A dataclass (and what it holds) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        custom = getattr(value, "to_json", None)
        return custom() if custom is not None else dump_fields(value)
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [dump(v) for v in value]
    if isinstance(value, np.generic):  # a figure computed with numpy
        return value.item()
    return value


def dump_fields(obj: Any) -> dict[str, Any]:
    """The default JSON of a dataclass: one key per field, in field order."""
    return {f.name: dump(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def load(hint: Any, value: Any, where: str) -> Any:
    """``value`` read as type ``hint``; ``where`` names it in errors."""
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        custom = getattr(hint, "from_json", None)
        return custom(value, where) if custom is not None else load_fields(hint, value, where)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]  # only ``X | None`` is used
        return load(inner, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ShapeError(f"{where}: expected a list, got {kind_of(value)}")
        return [load(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ShapeError(f"{where}: expected an object, got {kind_of(value)}")
        return {k: load(args[1], v, f"{where}.{k}") for k, v in value.items()}
    expected = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}.get(hint)
    if expected is None:
        raise TypeError(f"jsonshape cannot read {hint!r}")
    if not isinstance(value, expected) or (hint is not bool and isinstance(value, bool)):
        raise ShapeError(f"{where}: expected {_NAMES[hint]}, got {kind_of(value)}")
    return value


def load_fields(cls: type, value: Any, where: str, *, ignore: tuple[str, ...] = ()) -> Any:
    """The default reading of a dataclass: every field without a default must be there, no other key may.

    Keys in ``ignore`` are skipped (the caller reads them itself)."""
    if not isinstance(value, dict):
        raise ShapeError(f"{where or 'the document'}: expected an object, got {kind_of(value)}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in value if k not in fields and k not in ignore]
    if unknown:
        raise ShapeError(f"{_at(where, unknown[0])}: unexpected key")
    missing = [
        name
        for name, f in fields.items()
        if name not in value and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ShapeError(f"{_at(where, missing[0])}: missing")
    return cls(**{name: load(hints[name], value[name], _at(where, name)) for name in fields if name in value})


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def kind_of(value: Any) -> str:
    """How an error message names the type of a JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number"}.get(
        type(value), type(value).__name__
    )
