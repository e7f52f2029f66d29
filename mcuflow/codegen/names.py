"""Make model-supplied names safe to print into C: identifiers and comment text."""

from __future__ import annotations

import re

# C99 and C11 keywords, plus names a C library reserves at file scope that a prefix avoids anyway.
C_KEYWORDS = frozenset(
    [
        "auto",
        "break",
        "case",
        "char",
        "const",
        "continue",
        "default",
        "do",
        "double",
        "else",
        "enum",
        "extern",
        "float",
        "for",
        "goto",
        "if",
        "inline",
        "int",
        "long",
        "register",
        "restrict",
        "return",
        "short",
        "signed",
        "sizeof",
        "static",
        "struct",
        "switch",
        "typedef",
        "union",
        "unsigned",
        "void",
        "volatile",
        "while",
        "_Bool",
        "_Complex",
        "_Imaginary",
        "_Alignas",
        "_Alignof",
        "_Atomic",
        "_Generic",
        "_Noreturn",
        "_Static_assert",
        "_Thread_local",
        "asm",
        "fortran",
    ]
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def c_identifier(name: str, prefix: str = "mcuflow_", max_len: int = 48) -> str:
    """A valid, non-reserved C identifier derived from ``name``: never a keyword, never ``_X``/``__x``.

    Anything outside ``[A-Za-z0-9_]`` becomes ``_``, so quotes, semicolons, comment markers and
    newlines cannot reach the source; the fixed lowercase prefix keeps it out of the reserved space.
    """
    body = re.sub(r"[^A-Za-z0-9_]", "_", str(name))
    body = re.sub(r"_+", "_", body).strip("_") or "x"
    ident = (prefix + body)[:max_len]
    if not _IDENT.match(ident) or ident in C_KEYWORDS or ident.startswith("_"):  # pragma: no cover - prefix guards
        raise ValueError(f"cannot make a C identifier from {name!r}")
    return ident


def c_comment(text: str, max_len: int = 100) -> str:
    """Text safe inside ``/* ... */``: printable ASCII without ``*`` (so no ``*/`` or ``/*``), ``?`` (trigraphs) or
    backslashes; a lone ``/`` is harmless without a ``*``."""
    clean = "".join(ch if ch.isascii() and (ch.isalnum() or ch in " _.,:;()[]-+=<>#'\"/") else "_" for ch in str(text))
    clean = clean[:max_len]
    return clean[:-1] + "_" if clean.endswith("/") else clean  # never a "/" that a template's "*/" could join
