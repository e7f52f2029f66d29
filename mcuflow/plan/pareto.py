"""Non-dominated sets: accuracy up, every cost down."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is no worse than ``b`` everywhere and better somewhere (every value: lower is better)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def front(items: Sequence[T], key: Callable[[T], Sequence[float]]) -> list[T]:
    """The items no other item dominates, in input order (``key``: lower is better in every value)."""
    keys = [tuple(key(i)) for i in items]
    return [it for it, k in zip(items, keys, strict=True) if not any(dominates(o, k) for o in keys if o != k)]
