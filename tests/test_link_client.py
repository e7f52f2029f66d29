"""Tier 1: message parsing and DeviceClient on an in-memory device (mcuflow.link.sim)."""

from __future__ import annotations

import contextlib
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcuflow.link import DeviceClient, DeviceError, LinkTimeout, LocalResult, Offload, ProtocolError
from mcuflow.link import messages as m
from mcuflow.link.frame import Frame, encode_frame
from mcuflow.link.sim import SimDevice, SimTransport

HASH = bytes(range(32))


def head(x: np.ndarray):
    s = int(x.astype(np.int64).sum())
    if x[0] == 101:
        return None
    if s % 2 == 0:
        return LocalResult(0, abs(s) % 10, abs(s) % 32768, 1000 + abs(s) % 1000)
    return Offload(0, 8, -128, 2.0**-7, 2000, (x[:40].astype(np.int16) + 1).astype(np.int8))


def make(fault=None):
    dev = SimDevice(head, HASH)
    return dev, DeviceClient(SimTransport(dev, fault), timeout=0.05)


def sample(seed: int, odd: bool) -> np.ndarray:
    x = np.random.default_rng(seed).integers(-128, 128, 784).astype(np.int8)
    x[0] = 0
    if (int(x.astype(np.int64).sum()) % 2 == 1) != odd:
        x[1] = np.int8(x[1] - 1) if x[1] > -128 else np.int8(x[1] + 1)
    return x


def test_hello_and_infer_both_kinds():
    dev, client = make()
    info = client.hello()
    assert info.model_hash == HASH and info.board == "sim" and info.input_len == 784 and info.intermediate_len == 40
    assert info.capabilities & m.CAP_DEDUP and info.encodings == [0]
    local = client.infer(sample(1, odd=False))
    assert isinstance(local, LocalResult) and local.wire_len == 18
    x = sample(2, odd=True)
    off = client.infer(x)
    assert isinstance(off, Offload) and off.wire_len == 66
    np.testing.assert_array_equal(off.values, (x[:40].astype(np.int16) + 1).astype(np.int8))
    np.testing.assert_allclose(off.dequantize(), (off.values.astype(np.float32) + 128) / 128)
    assert client.stats.stale == 0 and dev.head_runs == 2


def test_device_error_and_bad_input_size():
    _, client = make()
    client.hello()
    x = sample(3, odd=False)
    x[0] = 101
    with pytest.raises(DeviceError) as err:
        client.infer(x)
    assert err.value.code == 5 and "HEAD_FAILED" in str(err.value)
    with pytest.raises(Exception, match="784"):
        client.infer(np.zeros(783, np.int8))
    client.info = None  # without HELLO the client cannot check; the device does
    with pytest.raises(DeviceError) as err:
        client.infer(np.zeros(783, np.int8))
    assert err.value.code == 4


def test_retry_resends_same_seq_and_device_deduplicates():
    state = {"drop_next_reply": False}

    def fault(direction, data):
        if direction == "up" and data and state["drop_next_reply"]:
            state["drop_next_reply"] = False
            return b""
        return data

    dev = SimDevice(head, HASH)
    client = DeviceClient(SimTransport(dev, fault), timeout=0.05, retries=2)
    client.hello()
    seen = []
    client.on_retry = lambda attempt, t, seq: seen.append((attempt, t, seq))
    state["drop_next_reply"] = True
    reply = client.infer(sample(4, odd=False))
    assert isinstance(reply, LocalResult)
    assert seen == [(1, m.INFER, 2)]
    assert dev.head_runs == 1  # the retry was answered from the cache
    assert client.stats.retries == 1 and client.stats.timeouts == 1


def test_no_answer_raises_timeout_after_retries():
    dev = SimDevice(head, HASH)
    client = DeviceClient(SimTransport(dev, lambda d, b: b"" if d == "up" else b), timeout=0.02, retries=1)
    with pytest.raises(LinkTimeout, match="HELLO.*2 attempts"):
        client.hello()
    assert client.stats.timeouts == 2


def test_stale_replies_are_ignored():
    dev = SimDevice(head, HASH)
    client = DeviceClient(SimTransport(dev), timeout=0.05)
    client.hello()
    late = encode_frame(m.LOCAL_RESULT, 999, LocalResult(0, 9, 1, 1).pack())
    client.transport._rx += late  # a late answer to an abandoned request
    reply = client.infer(sample(5, odd=False))
    assert isinstance(reply, LocalResult) and reply.instructions != 1
    assert client.stats.stale == 1


def test_corrupted_reply_is_not_accepted():
    def fault(direction, data):
        if direction == "up" and len(data) > 20:
            data = bytearray(data)
            data[10] ^= 0x40
            return bytes(data)
        return data

    dev = SimDevice(head, HASH)
    client = DeviceClient(SimTransport(dev, fault), timeout=0.02, retries=1)
    with pytest.raises(LinkTimeout):
        client.hello()  # every HELLO_REPLY is corrupted: never accepted
    assert sum(client.stats.dropped.values()) == 2


def _frame(msg_type, payload):
    return Frame(1, msg_type, 1, payload, 0)


def test_strict_parsing_of_device_messages():
    good_hello = m.Hello((0, 1), 1, 784, 40, 10, 1, 1024, 0, HASH, "b").pack()
    assert m.parse_reply(_frame(m.HELLO_REPLY, good_hello)).board == "b"
    bad = [
        (m.HELLO_REPLY, good_hello[:-1]),  # name shorter than its length byte
        (m.HELLO_REPLY, good_hello + b"x"),
        (m.HELLO_REPLY, good_hello[:50] + bytes([40]) + b"x" * 40),  # name too long
        (m.HELLO_REPLY, good_hello[:-1] + b"\x07"),  # not printable
        (m.LOCAL_RESULT, b"\x00" * 7),
        (m.LOCAL_RESULT, struct.pack("<BBHI", 0, 1, 40000, 1)),  # confidence > 1
        (m.OFFLOAD, b"\x00" * 15),
        (m.ERROR, b""),
        (m.INFER, b""),  # a request type from the device
        (0x42, b""),
    ]
    for t, payload in bad:
        with pytest.raises(ProtocolError):
            m.parse_reply(_frame(t, payload))


def _offload(encoding=0, bits=8, count=40, zp=-128, scale=0.5, body=None):
    body = bytes(count) if body is None else body
    return struct.pack("<BBHiII", encoding, bits, count, zp, struct.unpack("<I", struct.pack("<f", scale))[0], 7) + body


@pytest.mark.parametrize(
    "payload, expected",
    [
        (_offload(body=bytes(39)), 40),  # truncated tensor
        (_offload(body=bytes(41)), 40),  # trailing bytes
        (_offload(count=41, body=bytes(41)), 40),  # count differs from HELLO
        (_offload(encoding=1), 40),  # reserved encoding, not implemented yet
        (_offload(encoding=200), 40),
        (_offload(bits=4), 40),
        (_offload(zp=300), 40),
        (_offload(scale=float("nan")), 40),
        (_offload(scale=-1.0), 40),
    ],
)
def test_bad_offloads_are_rejected(payload, expected):
    with pytest.raises(ProtocolError):
        m.parse_reply(_frame(m.OFFLOAD, payload), expected_intermediate=expected)


@given(st.binary(max_size=120), st.sampled_from([m.HELLO_REPLY, m.LOCAL_RESULT, m.OFFLOAD, m.ERROR, m.BYE_REPLY]))
def test_random_payloads_parse_or_raise_protocol_error(payload, msg_type):
    with contextlib.suppress(ProtocolError):  # anything else (IndexError, struct.error) fails the test
        m.parse_reply(_frame(msg_type, payload), expected_intermediate=40)


def test_bye():
    dev, client = make()
    client.bye()
    assert dev.exited


@given(st.lists(st.integers(-128, 127), min_size=1, max_size=300), st.integers(-128, 127))
def test_bitmap_round_trip(values, fill):
    from mcuflow.codec import encodings

    v = np.array(values, dtype=np.int8)
    enc = encodings.bitmap_encode(v, fill)
    assert len(enc) == encodings.bitmap_size(v, fill)
    np.testing.assert_array_equal(encodings.bitmap_decode(enc, v.size, fill), v)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 40])
def test_bitmap_edge_tensors_and_malformed(n):
    from mcuflow.codec import encodings

    for v in (np.zeros(n, np.int8), np.arange(1, n + 1, dtype=np.int8), np.eye(1, n, dtype=np.int8)[0]):
        np.testing.assert_array_equal(encodings.bitmap_decode(encodings.bitmap_encode(v, 0), n, 0), v)
    nb = (n + 7) // 8
    bad = [bytes(nb - 1), b"\x01" + bytes(nb - 1), bytes(nb) + b"\x05"]
    if n % 8:
        bad.append(bytes(nb - 1) + bytes([0x80]) + b"\x05")  # a bit past the end
    for data in bad:
        with pytest.raises(ProtocolError):
            encodings.bitmap_decode(data, n, 0)


def test_bitmap_offload_decodes_with_zero_point_fill():
    v = np.full(40, -128, np.int8)
    v[[3, 17]] = [5, -7]
    off = Offload(1, 8, -128, 0.5, 9, v)
    parsed = m.parse_reply(_frame(m.OFFLOAD, off.pack()), expected_intermediate=40)
    np.testing.assert_array_equal(parsed.values, v)
    assert len(off.pack()) == 16 + 5 + 2


def test_client_sends_sparse_inputs_only_when_smaller():
    dev, client = make()
    client.hello()
    sparse = np.full(784, -128, np.int8)
    sparse[100:150] = 3
    t, payload = client.infer_request(sparse)
    assert t == m.INFER_SPARSE and len(payload) == 2 + 98 + 50
    assert client.infer(sparse).instructions > 0 and dev.head_runs == 1
    dense = np.random.default_rng(0).integers(-128, 128, 784).astype(np.int8)
    assert client.infer_request(dense)[0] == m.INFER


def test_session_reports_every_sample_when_the_link_dies():
    from mcuflow.link.errors import LinkError
    from mcuflow.tail import SessionSummary, run_session

    dev = SimDevice(head, HASH)
    transport = SimTransport(dev)
    client = DeviceClient(transport, timeout=0.05)
    client.hello()
    calls = {"n": 0}
    real_write = transport.write

    def dying_write(data):
        calls["n"] += 1
        if calls["n"] > 3:
            raise LinkError("port unplugged")
        real_write(data)

    transport.write = dying_write
    x = np.stack([sample(i, odd=False) for i in range(6)])
    summary = SessionSummary()
    records = list(run_session(client, x, None, np.zeros(6, int), summary))
    assert [r.status for r in records] == ["local"] * 3 + ["lost"] * 3
    assert "port unplugged" in records[3].error and records[5].error.startswith("not sent: the link failed")
    assert summary.as_dict()["lost"] == 3 and summary.samples == 6


def test_hello_carries_the_input_quantisation_when_its_capability_says_so():
    base = m.Hello((0, 1), 1 | m.CAP_INPUT_QUANT, 10, 4, 3, 1, 1024, 0, HASH, "b", 0, 0.25, -7)
    raw = base.pack()
    got = m.Hello.parse(raw)
    assert (got.input_scale, got.input_zero_point) == (0.25, -7)
    with pytest.raises(m.ProtocolError, match="does not match"):
        m.Hello.parse(raw[:-1])  # the capability promises five more bytes
    with pytest.raises(m.ProtocolError, match="input scale"):
        m.Hello.parse(raw[:-5] + struct.pack("<fb", -1.0, 0))
    plain = m.Hello((0, 1), 1, 10, 4, 3, 1, 1024, 0, HASH, "b").pack()
    assert m.Hello.parse(plain).input_scale is None
