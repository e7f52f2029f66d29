"""Tier 1: COBS, CRC, frames and the stream decoder, pure Python."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcuflow.link import cobs
from mcuflow.link.crc import crc16
from mcuflow.link.frame import (
    HEADER_LEN,
    MAX_ENCODED,
    MAX_PAYLOAD,
    MAX_RAW,
    Frame,
    FrameDecoder,
    FrameDrop,
    encode_frame,
    wire_size,
)

payloads = st.binary(min_size=0, max_size=MAX_PAYLOAD)
frames = st.tuples(st.integers(0, 255), st.integers(0, 0xFFFF), st.binary(max_size=300))


def test_crc_check_value():
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF


@given(st.binary(max_size=2000))
def test_cobs_round_trip_has_no_zero_and_bounded_overhead(data):
    enc = cobs.encode(data)
    assert 0 not in enc
    assert len(enc) <= cobs.max_encoded_len(len(data))
    assert cobs.decode(enc) == data


@pytest.mark.parametrize("n", [0, 1, 253, 254, 255, 508, 1032])
def test_cobs_block_edges(n):
    for fill in (b"\x01", b"\x00"):
        data = fill * n
        assert cobs.decode(cobs.encode(data)) == data
        assert len(cobs.encode(data)) <= cobs.max_encoded_len(n)


@pytest.mark.parametrize("bad", [b"\x00", b"\x05ab", b"\x02a\x00", b"\xff" + b"a" * 10])
def test_cobs_rejects_malformed(bad):
    with pytest.raises(cobs.CobsError):
        cobs.decode(bad)


@given(frames)
def test_frame_round_trip(frame):
    msg_type, seq, payload = frame
    wire = encode_frame(msg_type, seq, payload)
    assert wire.endswith(b"\x00") and wire.count(0) == 1
    assert len(wire) == wire_size(len(payload), payload) <= wire_size(len(payload))
    (got,) = FrameDecoder().feed(wire)
    assert got == Frame(1, msg_type, seq, payload, len(wire))


@settings(max_examples=30)
@given(st.lists(frames, min_size=1, max_size=5))
def test_split_at_every_byte_boundary(frame_list):
    wire = b"".join(encode_frame(t, s, p) for t, s, p in frame_list)
    expected = [(t, s, p) for t, s, p in frame_list]
    for cut in range(len(wire) + 1):
        dec = FrameDecoder()
        got = dec.feed(wire[:cut]) + dec.feed(wire[cut:])
        assert [(f.type, f.seq, f.payload) for f in got] == expected


def test_byte_at_a_time_and_back_to_back():
    wire = b"".join(encode_frame(0x82, i, bytes([i] * i)) for i in range(20))
    dec = FrameDecoder()
    got = [f for b in wire for f in dec.feed(bytes([b]))]
    assert [f.seq for f in got] == list(range(20))
    assert all(f.payload == bytes([f.seq] * f.seq) for f in got)
    assert dec.pending == 0


@given(st.binary(max_size=200), frames)
def test_garbage_then_resync(garbage, frame):
    msg_type, seq, payload = frame
    dec = FrameDecoder()
    out = dec.feed(garbage + b"\x00" + encode_frame(msg_type, seq, payload))
    good = [f for f in out if isinstance(f, Frame)]
    # Garbage may by chance form a valid frame (1 in 65536); the last one is ours.
    assert good and (good[-1].type, good[-1].seq, good[-1].payload) == (msg_type, seq, payload)


def test_empty_frames_are_ignored():
    assert FrameDecoder().feed(b"\x00\x00\x00") == []


def test_bad_crc_is_dropped_and_next_frame_survives():
    wire = bytearray(encode_frame(0x82, 7, b"abcdefgh"))
    wire[3] ^= 0x01  # a payload bit; COBS structure intact
    dec = FrameDecoder()
    out = dec.feed(bytes(wire) + encode_frame(0x82, 8, b"ok"))
    assert isinstance(out[0], FrameDrop) and out[0].reason == "crc"
    assert isinstance(out[1], Frame) and out[1].seq == 8
    assert dec.drops == {"crc": 1}


def test_oversized_run_is_dropped_without_buffering_it():
    dec = FrameDecoder()
    out = dec.feed(b"\x01" * (MAX_ENCODED + 5000))
    assert out == [] and dec.pending == MAX_ENCODED + 5000 and len(dec._buf) <= MAX_ENCODED
    out = dec.feed(b"\x00" + encode_frame(0x81, 1, b"x"))
    assert [type(o) for o in out] == [FrameDrop, Frame] and out[0].reason == "oversize"


def test_largest_frame_passes_and_one_more_byte_does_not():
    payload = b"\x01" * MAX_PAYLOAD
    wire = encode_frame(0x02, 1, payload)
    assert len(wire) - 1 == MAX_ENCODED  # worst case: no zero at all
    assert isinstance(FrameDecoder().feed(wire)[0], Frame)
    with pytest.raises(ValueError):
        encode_frame(0x02, 1, payload + b"\x01")
    raw = struct.pack("<BBHH", 1, 2, 1, MAX_PAYLOAD + 1) + b"\x01" * (MAX_PAYLOAD + 1)
    raw += struct.pack("<H", crc16(raw))
    assert len(raw) == MAX_RAW + 1
    (out,) = FrameDecoder().feed(cobs.encode(raw) + b"\x00")
    assert isinstance(out, FrameDrop) and out.reason == "oversize"


def test_length_field_mismatch_is_dropped():
    raw = struct.pack("<BBHH", 1, 0x82, 3, 9) + b"12345678"  # says 9, carries 8
    raw += struct.pack("<H", crc16(raw))
    (out,) = FrameDecoder().feed(cobs.encode(raw) + b"\x00")
    assert isinstance(out, FrameDrop) and out.reason == "length"
    (out,) = FrameDecoder(strict_length=False).feed(cobs.encode(raw) + b"\x00")
    assert isinstance(out, Frame) and len(out.payload) == 8


def test_too_short_frame_is_dropped():
    (out,) = FrameDecoder().feed(cobs.encode(b"\x01\x02\x03") + b"\x00")
    assert isinstance(out, FrameDrop) and out.reason == "short"
    assert HEADER_LEN == 6
