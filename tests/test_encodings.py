"""The OFFLOAD codecs and link compression in Python: round trips, sizes, pruning rules and
hostile payloads (docs/protocol.md, "Encodings" and "Link compression")."""

from __future__ import annotations

import contextlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcuflow.codec import compress as C
from mcuflow.codec import encodings as E
from mcuflow.errors import ConfigError
from mcuflow.link import messages as m
from mcuflow.link.errors import ProtocolError


@st.composite
def code_tensors(draw):
    """(codes, bits, fill): random, all-fill, all-non-fill and single-element tensors."""
    bits = draw(st.sampled_from([2, 3, 4, 6, 8]))
    lo, hi = (-128, 127) if bits == 8 else (0, (1 << bits) - 1)
    n = draw(st.sampled_from([1, 1, 2, 7, 8, 9, 40, 255, 256, 300]))
    fill = draw(st.integers(lo, hi))
    kind = draw(st.sampled_from(["random", "sparse", "all-fill", "no-fill", "long-runs"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    codes = rng.integers(lo, hi + 1, n)
    if kind == "sparse":
        codes[rng.random(n) < 0.8] = fill
    elif kind == "all-fill":
        codes[:] = fill
    elif kind == "no-fill":
        other = lo if fill != lo else hi
        codes[codes == fill] = other
    elif kind == "long-runs":
        codes[:] = fill
        codes[rng.integers(0, n, 3)] = hi if fill != hi else lo
    return codes.astype(np.int8), bits, fill


@settings(max_examples=300, deadline=None)
@given(code_tensors())
def test_every_encoding_round_trips_and_sizes_agree(t):
    codes, bits, fill = t
    sizes = E.encoded_sizes(codes, bits, fill)
    for enc in E.ENCODINGS:
        body = E.encode(enc, codes, bits, fill)
        assert len(body) == sizes[enc]
        np.testing.assert_array_equal(E.decode(enc, body, codes.size, bits, fill), codes)
    enc, body = E.encode_best(codes, bits, fill)
    assert len(body) == sizes.min() and sizes[:enc].min(initial=10**9) > sizes[enc]


@settings(max_examples=200, deadline=None)
@given(code_tensors(), st.integers(0, 2**32 - 1))
def test_offload_messages_round_trip(t, instr):
    codes, bits, fill = t
    enc, _ = E.encode_best(codes, bits, fill)
    msg = m.Offload(enc, bits, fill, 0.25, instr, codes)
    back = m.Offload.parse(msg.pack(), expected_len=codes.size)
    np.testing.assert_array_equal(back.values, codes)
    assert (back.encoding, back.bits, back.zero_point, back.instructions) == (enc, bits, fill, instr)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.sampled_from(E.ENCODINGS), st.sampled_from([1, 9, 40, 300]), st.sampled_from([4, 8]))
def test_random_bodies_decode_or_raise_protocol_error(data, enc, n, bits):
    with contextlib.suppress(ProtocolError):  # IndexError, ValueError etc. fail the test
        out = E.decode(enc, data, n, bits, 0)
        assert out.shape == (n,) and out.dtype == np.int8


@pytest.mark.parametrize(
    "enc, body, n, bits",
    [
        (E.INDEX_VALUE, bytes([2, 3, 40, 1, 2]), 40, 8),  # index out of range
        (E.INDEX_VALUE, bytes([2, 5, 3, 1, 2]), 40, 8),  # indices out of order
        (E.INDEX_VALUE, bytes([2, 3, 3, 1, 2]), 40, 8),  # repeated index
        (E.INDEX_VALUE, bytes([41]) + bytes(range(41)) + bytes(41), 40, 8),  # count larger than the tensor
        (E.INDEX_VALUE, bytes([3, 1, 2]), 40, 8),  # truncated indices
        (E.INDEX_VALUE, bytes([1, 1, 7, 0]), 40, 8),  # a value too many
        (E.BITMAP, bytes(4), 40, 8),  # truncated bitmap
        (E.BITMAP, bytes([0, 0, 0, 0, 0x80, 5]), 39, 8),  # bit past the end
        (E.BITMAP, bytes([1, 0, 0, 0, 0]), 40, 8),  # marked value missing
        (E.ZERO_RUNS, bytes([1, 0x0F]), 40, 8),  # escape and then nothing
        (E.ZERO_RUNS, bytes([1, 0xFF, 0x0E, 9]), 40, 8),  # run past the end (15+15+14 > 39)
        (E.ZERO_RUNS, bytes([41]), 40, 8),  # count larger than the tensor
        (E.ZERO_RUNS, bytes([1, 0x10, 9]), 40, 8),  # padding nibble set
        (E.ZERO_RUNS, bytes([2, 0x00]), 40, 8),  # values missing
        (E.DENSE, bytes([0xFF] * 20), 39, 4),  # packing overflow: padding bits set
        (E.DENSE, bytes(21), 40, 4),  # one byte too many
        (E.BITMAP, bytes([1, 0, 0, 0, 0, 0x30]), 40, 4),  # packed value sets bits past it
        (E.DENSE, bytes(40), 40, 9),  # unsupported width
        (7, bytes(40), 40, 8),  # unknown encoding
    ],
)
def test_malformed_bodies_are_rejected(enc, body, n, bits):
    with pytest.raises(ProtocolError):
        E.decode(enc, body, n, bits, 0)


def _offload(encoding=0, bits=8, count=40, zp=-128, body=None):
    body = bytes(count) if body is None else body
    return struct.pack("<BBHiII", encoding, bits, count, zp, 0x3C000000, 1) + body


@pytest.mark.parametrize(
    "payload",
    [
        _offload(bits=4, zp=16, body=bytes(20)),  # zero point not a 4-bit code
        _offload(bits=4, zp=-1, body=bytes(20)),
        _offload(bits=1, zp=0, body=bytes(5)),
        _offload(bits=4, zp=0, body=bytes(40)),  # 8-bit body with a 4-bit header
        _offload(encoding=2, zp=-128, body=bytes([41]) + bytes(82)),
    ],
)
def test_malformed_offloads_are_rejected(payload):
    with pytest.raises(ProtocolError):
        m.Offload.parse(payload, expected_len=40)


def test_pruning_rules():
    zp = -128
    q = np.array([-128, -100, -127, -28, 0, -28, -120, 127], dtype=np.int8)  # |d| = 0 28 1 100 128 100 8 255
    keep = C.prune_mask(q, zp, threshold=8)
    assert keep.tolist() == [False, True, False, True, True, True, False, True]
    keep = C.prune_mask(q, zp, topk=3)
    assert keep.tolist() == [False, False, False, True, True, False, False, True]  # tie at 100: lower index
    keep = C.prune_mask(q, zp, threshold=100, topk=3)
    assert keep.tolist() == [False, False, False, False, True, False, False, True]
    assert C.prune_mask(q, zp, topk=8).sum() == 7  # the zero stays a zero


def test_narrow_codes_and_scale():
    cfg = C.LinkConfig(bits=4, shift=4, code_zp=0)
    q = np.array([-128, -127, -121, -120, 127, -56], dtype=np.int8)  # d = 0 1 7 8 255 72
    codes, fill = C.link_codes(q, -128, cfg)
    assert fill == 0 and codes.tolist() == [0, 0, 0, 1, 15, 5]  # (d + 8) >> 4, clamped to 15
    assert C.link_scale(0.25, cfg) == 4.0
    signed = C.LinkConfig(bits=4, shift=1, code_zp=8)
    codes, fill = C.link_codes(np.array([0, -3, 3, 127, -128], dtype=np.int8), 0, signed)
    assert fill == 8 and codes.tolist() == [8, 7, 10, 15, 0]  # (d + 1) >> 1 + 8: -3 -> -1, 3 -> 2


def test_auto_shift_fits_the_calibration_range():
    assert C.auto_shift(8, 255) == (0, 0)
    assert C.auto_shift(4, 255) == (5, 0)  # (255 + 16) >> 5 = 8 <= 15; shift 4 gives 16
    assert C.auto_shift(4, 100, -100) == (4, 8)  # (100 + 8) >> 4 = 6 <= 7, (-92) >> 4 = -6 >= -8
    assert C.auto_shift(6, 40) == (0, 0)


@pytest.mark.parametrize(
    "cfg",
    [
        C.LinkConfig(threshold=256),
        C.LinkConfig(topk=-1),
        C.LinkConfig(bits=9),
        C.LinkConfig(bits=8, shift=1),
        C.LinkConfig(bits=4, code_zp=3),
    ],
)
def test_bad_configs_are_config_errors(cfg):
    with pytest.raises(ConfigError):
        cfg.validate(40)
