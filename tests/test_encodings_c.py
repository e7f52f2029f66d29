"""Tier 2: the device's OFFLOAD compression in C (firmware/link/mcuflow_link.c) against the
Python codecs and the reference's link_codes, byte for byte, on random and edge-case tensors."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tools

from mcuflow.codec import compress as C
from mcuflow.codec import encodings as E

pytestmark = pytest.mark.toolchain
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module", params=["gcc", "clang"])
def linkopt(request, tmp_path_factory):
    require_tools(request.param)
    spec = importlib.util.spec_from_file_location("link_build", HERE / "c" / "link" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)  # type: ignore[union-attr]
    out = tmp_path_factory.mktemp("linkopt")
    exe = out / f"linkopt_{request.param}"
    return build.compile_program(
        exe, [build.LINK_C, HERE / "c" / "link" / "linkopt_main.c"], request.param, sanitize=request.param == "gcc"
    )


def _cases(rng: np.random.Generator) -> list[tuple[np.ndarray, int, C.LinkConfig]]:
    cases = []
    for i in range(400):
        n = int(rng.choice([1, 2, 8, 9, 40, 40, 40, 255, 256, 700]))
        zp = int(rng.integers(-128, 128)) if i % 3 else -128
        q = rng.integers(-128, 128, n).astype(np.int8)
        style = i % 5
        if style == 1:
            q[rng.random(n) < 0.7] = zp  # sparse, like a ReLU output
        elif style == 2:
            q[:] = zp  # all zero
        elif style == 3:
            q[q == zp] = zp + 1 if zp < 127 else zp - 1  # no zero at all
        bits = int(rng.choice([2, 3, 4, 5, 6, 7, 8]))
        threshold = int(rng.choice([0, 0, 3, 20, 120, 255]))
        topk = int(rng.choice([0, 0, 1, 3, 10, n]))
        topk = min(topk, n)
        if bits == 8:
            cfg = C.LinkConfig(threshold, topk, 8)
        else:
            code_zp = int(rng.choice([0, 1 << (bits - 1)]))
            cfg = C.LinkConfig(threshold, topk, bits, int(rng.integers(0, 9)), code_zp)
        cases.append((q, zp, cfg.validate(n)))
    # ties at the top-k boundary, in both halves of the tensor
    q = np.full(40, -28, dtype=np.int8)
    q[::3] = -128
    cases.append((q, -128, C.LinkConfig(0, 5, 8)))
    cases.append((q, -128, C.LinkConfig(0, 5, 4, 4, 0)))
    return cases


def test_device_compression_matches_python(linkopt):
    cases = _cases(np.random.default_rng(6))
    stdin = b"".join(
        len(q).to_bytes(2, "little")
        + bytes([zp & 0xFF, c.threshold])
        + c.topk.to_bytes(2, "little")
        + bytes([c.bits, c.shift, c.code_zp])
        + q.tobytes()
        for q, zp, c in cases
    )
    proc = subprocess.run([str(linkopt)], input=stdin, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    out, at = proc.stdout, 0
    encodings_seen = set()
    for q, zp, c in cases:
        n = len(q)
        codes, fill = C.link_codes(q, zp, c)
        assert out[at] == fill & 0xFF
        np.testing.assert_array_equal(np.frombuffer(out[at + 1 : at + 1 + n], dtype=np.int8), codes)
        at += 1 + n
        chosen = out[at]
        at += 1
        assert chosen == E.choose(codes, c.bits, fill)
        encodings_seen.add(chosen)
        for enc in E.ENCODINGS:
            size = int.from_bytes(out[at : at + 2], "little")
            body = out[at + 2 : at + 2 + size]
            at += 2 + size
            assert body == E.encode(enc, codes, c.bits, fill), (enc, c)
            np.testing.assert_array_equal(E.decode(enc, body, n, c.bits, fill), codes)
    assert at == len(out)
    assert encodings_seen == set(E.ENCODINGS)  # the random cases exercise every encoding
