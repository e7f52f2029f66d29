"""Fragmented requests, host side: message codecs, the part sizer and the --fragment setting.
The exchange itself is tested against the Python device (tests/test_recovery.py) and the C
device (tests/test_protocol_c.py)."""

from __future__ import annotations

import math
import zlib

import pytest

from mcuflow.errors import ConfigError
from mcuflow.link import messages as m
from mcuflow.link.errors import ProtocolError
from mcuflow.link.fragment import PART_OVERHEAD, PartSizer, parse_fragment


def test_fragment_setting_parses_and_rejects():
    assert parse_fragment("auto") == "auto" and parse_fragment("OFF") == "off" and parse_fragment(None) == "off"
    assert parse_fragment("32") == 32 and parse_fragment(48) == 48
    for bad in ("7", "241", "big", ""):
        with pytest.raises(ConfigError):
            parse_fragment(bad)


def test_part_commit_and_status_round_trip():
    body = bytes(range(200))
    assert m.parse_part(m.part_payload(513, 3, 9, 96, body[96:128])) == (513, 3, 9, 96, body[96:128])
    tid, count, inner, total, check = m.parse_commit(m.commit_payload(513, 9, m.INFER_SPARSE, body))
    assert (tid, count, inner, total) == (513, 9, m.INFER_SPARSE, 200)
    assert check == zlib.crc32(bytes([m.INFER_SPARSE]) + body) != m.body_check(m.INFER, body)
    status = m.TransferStatus(513, 12, m.XFER_MISSING, (0, 9, 11))
    assert m.TransferStatus.parse(status.pack()) == status and len(status.pack()) == 4 + 2


@pytest.mark.parametrize(
    "payload",
    [
        b"\x01\x00\x04",  # short
        b"\x01\x00\x00\x00",  # zero parts
        b"\x01\x00\x41\x00" + bytes(9),  # 65 parts
        b"\x01\x00\x04\x07\x0f",  # unknown reason
        b"\x01\x00\x04\x00\x0f\x00",  # bitmap too long
        b"\x01\x00\x04\x00\x1f",  # a missing part past the count
        b"\x01\x00\x04\x00\x00",  # "missing" but none listed
        b"\x01\x00\x04\x01\x07",  # a failed check keeps parts
    ],
)
def test_malformed_status_is_a_protocol_error(payload):
    with pytest.raises(ProtocolError):
        m.TransferStatus.parse(payload)


@pytest.mark.parametrize("payload", [m.part_payload(1, 0, 4, 0, b""), m.part_payload(1, 4, 4, 0, b"x")])
def test_malformed_part_is_a_protocol_error(payload):
    with pytest.raises(ProtocolError):
        m.parse_part(payload)


def test_sizer_follows_the_survival_of_parts():
    sizer = PartSizer()
    assert sizer.loss_rate() is None and sizer.commit_copies() == 2
    first = sizer.part_size(250)
    assert 24 <= first <= 40
    # 1% of the bytes lost: parts of ~30 bytes (the optimum of d q^(d+o) / (d+o)).
    wire = first + PART_OVERHEAD
    for _ in range(200):
        sizer.observe(10, round(10 * math.exp(-0.011 * wire)), wire)
    assert sizer.loss_rate() == pytest.approx(0.011, rel=0.15)
    assert 24 <= sizer.part_size(250) <= 40 and sizer.commit_copies() >= 3 and sizer.part_copies() == 2
    # A clean link: parts as large as allowed, one COMMIT, no doubled parts.
    for _ in range(400):
        sizer.observe(4, 4, 60)
    assert sizer.part_size(250) == 125 and sizer.part_size(600) == 200
    assert sizer.part_size(100) == 100 and sizer.commit_copies() == 1 and sizer.part_copies() == 1
    assert PartSizer(8).part_size(784) == 13  # 8-byte parts would make 98 > 64 parts


def test_parts_are_equal_and_never_more_than_the_device_takes():
    for body_len in (1, 100, 250, 784):
        for fixed in (8, 13, 32, 240):
            size = PartSizer(fixed).part_size(body_len)
            count = -(-body_len // size)
            assert count <= m.XFER_MAX_PARTS and size <= max(fixed, -(-body_len // m.XFER_MAX_PARTS))
            assert count * size - body_len < count  # the last part is at most one byte short per part
