"""Dataclasses to and from JSON, checked against their type hints.

The typed hand-offs between stages (``export.json``, a HIL result) are frozen dataclasses; this turns them
into plain JSON values and back, refusing anything that does not match the declared types with one line
naming the key. It covers what those types use: dataclasses, ``X | None``, ``list[X]``, ``dict[str, X]``,
``tuple[X, ...]`` and the JSON scalars. (Kept in-house rather than adding a dependency such as pydantic or
dacite: about forty lines, and the low rooms that read ``export.json`` stay dependency-free.)
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, TypeVar

from mcuflow.errors import ConfigError

T = TypeVar("T")


def to_json(obj: Any) -> Any:
    """Plain JSON values (dicts, lists, numbers, strings) of a dataclass tree."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    return obj


def from_json(cls: type[T], data: Any, where: str) -> T:
    """``cls`` built from JSON ``data``; a mismatch raises ConfigError naming ``where`` and the key."""
    return _convert(cls, data, where)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(tp: Any, v: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if v is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _convert(inner, v, path)
    if dataclasses.is_dataclass(tp):
        if not isinstance(v, dict):
            raise ConfigError(f"{path}: expected an object, got {type(v).__name__}")
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in v:
                kwargs[f.name] = _convert(_hints(tp)[f.name], v[f.name], f"{path}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{path}: missing key {f.name!r}")
        return tp(**kwargs)
    if origin in (list, tuple):
        if not isinstance(v, list):
            raise ConfigError(f"{path}: expected a list, got {type(v).__name__}")
        (inner, *_) = typing.get_args(tp)
        items = [_convert(inner, x, f"{path}[{i}]") for i, x in enumerate(v)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(v, dict):
            raise ConfigError(f"{path}: expected an object, got {type(v).__name__}")
        _, inner = typing.get_args(tp)
        return {str(k): _convert(inner, x, f"{path}.{k}") for k, x in v.items()}
    if tp is float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ConfigError(f"{path}: expected a number, got {type(v).__name__}")
        return float(v)
    if tp is int and (isinstance(v, bool) or not isinstance(v, int)):
        raise ConfigError(f"{path}: expected an integer, got {type(v).__name__}")
    if tp in (str, bool) and not isinstance(v, tp):
        raise ConfigError(f"{path}: expected {'a string' if tp is str else 'true or false'}, got {type(v).__name__}")
    if tp is Any:
        return v
    return v
