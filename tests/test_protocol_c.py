"""Tier 2: the device's C protocol (firmware/link, firmware/app/serve.c) compiled on the host
and checked against the Python implementation both ways. The serve loop runs over
stdin/stdout with a fake head (tests/c/link/fake_head.c, mirrored by ``fake_head`` below)."""

from __future__ import annotations

import importlib.util
import os
import random
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import LIBFUZZER_MEMORY_FLAGS, require_tools
from hypothesis import given, settings
from hypothesis import strategies as st

from mcuflow.codec import encodings
from mcuflow.link import DeviceClient, DeviceError, LinkTimeout, LocalResult, Offload, ProcessTransport, cobs
from mcuflow.link import messages as m
from mcuflow.link.crc import crc16
from mcuflow.link.errors import ProtocolError
from mcuflow.link.faults import FaultInjector, FaultyTransport
from mcuflow.link.frame import MAX_ENCODED, Frame, FrameDecoder, FrameDrop, encode_frame, encode_lean_frame
from mcuflow.link.recovery import RecoveringClient
from mcuflow.link.replay import Replay, ReplayRefused, table_bytes
from mcuflow.link.sim import SimDevice

pytestmark = pytest.mark.toolchain
HERE = Path(__file__).resolve().parent


def _build_module():
    spec = importlib.util.spec_from_file_location("link_build", HERE / "c" / "link" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    require_tools("gcc")
    build = _build_module()
    out = tmp_path_factory.mktemp("link_c")
    return {"device": build.build_device(out), "codec": build.build_codec(out)}


def fake_head(x: np.ndarray, runs: int) -> tuple[str, object, int]:
    """What tests/c/link/fake_head.c answers for input x on its ``runs``-th head run."""
    s = int(x.astype(np.int64).sum())
    instr = 1000 * runs + abs(s) % 1000
    if x[0] == 101:
        return "error", 5, instr
    if s % 2 == 0:
        return "local", (abs(s) % 10, abs(s) % 32768), instr
    q = ((x[:40].astype(np.int16) + x[::-1][:40].astype(np.int16)) & 0xFF).astype(np.uint8).view(np.int8)
    return "offload", q, instr


def random_input(rng: np.random.Generator) -> np.ndarray:
    x = rng.integers(-128, 128, 784).astype(np.int8)
    if x[0] in (100, 101):
        x[0] = 0
    return x


def codec(programs, mode: str, data: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([programs["codec"], mode], input=data, capture_output=True, timeout=30)


# -- codec: C vs Python -------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=1100))
def test_c_cobs_and_crc_match_python(programs, data):
    out = codec(programs, "enc", data).stdout
    assert struct.unpack("<H", out[:2])[0] == crc16(data)
    assert out[2:] == cobs.encode(data)
    dec = codec(programs, "dec", cobs.encode(data))
    assert dec.returncode == 0 and dec.stdout == data


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=300))
def test_c_cobs_decoder_agrees_on_malformed_input(programs, data):
    data = data.replace(b"\x00", b"\x01")
    dec = codec(programs, "dec", data)
    try:
        expected = cobs.decode(data)
    except cobs.CobsError:
        assert dec.returncode == 3
    else:
        assert dec.returncode == 0 and dec.stdout == expected


def _c_rx_events(programs, stream: bytes):
    out = codec(programs, "rx", stream).stdout.decode().splitlines()
    events = []
    for line in out:
        parts = line.split()
        if parts[0] == "F":
            events.append(("F", int(parts[1]), int(parts[2]), bytes.fromhex(parts[5]) if len(parts) > 5 else b""))
        else:
            events.append(("D",))
    return events


def _py_rx_events(stream: bytes):
    events = []
    for item in FrameDecoder(strict_length=False).feed(stream):
        events.append(("D",) if isinstance(item, FrameDrop) else ("F", item.type, item.seq, item.payload))
    return events


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.integers(0, 255), st.integers(0, 0xFFFF), st.binary(max_size=200)).map(
                lambda f: encode_frame(*f)
            ),
            st.binary(max_size=60),
            st.binary(min_size=MAX_ENCODED - 2, max_size=MAX_ENCODED + 3).map(lambda b: b.replace(b"\x00", b"\x05")),
        ),
        max_size=6,
    )
)
def test_c_receiver_matches_python_decoder(programs, chunks):
    stream = b"".join(chunks) + b"\x00"
    assert _c_rx_events(programs, stream) == _py_rx_events(stream)


# -- the serve loop -----------------------------------------------------------


@pytest.fixture
def device(programs):
    t = ProcessTransport([str(programs["device"])])
    yield t
    t.close()


def raw_exchange(t: ProcessTransport, wire: bytes, timeout: float = 0.3) -> list:
    """Send bytes, collect what comes back until ``timeout`` of silence."""
    t.write(wire)
    dec, out = FrameDecoder(strict_length=False), []
    while True:
        data = t.read(timeout)
        if not data:
            return out
        out += dec.feed(data)


def test_hello_and_infer_match_the_fake_head(device):
    client = DeviceClient(device, timeout=2.0)
    info = client.hello()
    assert info.board == "host-fake" and info.model_hash == bytes(range(32))
    assert (info.input_len, info.intermediate_len, info.num_classes, info.num_exits) == (784, 40, 10, 1)
    caps = 0x0F | m.CAP_DEDUP | m.CAP_BYE | m.CAP_INFER_SPARSE | m.CAP_FRAGMENT | m.CAP_LEAN
    assert info.capabilities == caps and info.frames_dropped == 0  # no input table: no CAP_REPLAY
    assert (info.lean_bits, info.lean_zero_point, info.lean_scale) == (8, -128, 2.0**-7)
    rng = np.random.default_rng(0)
    kinds = set()
    for runs in range(1, 41):
        x = random_input(rng)
        kind, want, instr = fake_head(x, runs)
        reply = client.infer(x)
        kinds.add(kind)
        assert reply.instructions == instr
        if kind == "local":
            assert isinstance(reply, LocalResult) and (reply.label, reply.confidence_q15) == want
            assert reply.wire_len == 18
        else:
            assert isinstance(reply, Offload) and reply.wire_len == 66
            np.testing.assert_array_equal(reply.values, want)
            assert (reply.zero_point, reply.scale, reply.encoding) == (-128, 2.0**-7, 0)
        assert 794 <= client.last_request_wire_len <= 797
    assert kinds == {"local", "offload"}
    assert client.stats.stale == 0 and not client.stats.dropped


def test_frames_split_at_every_byte_boundary(device):
    x = random_input(np.random.default_rng(1))
    wire = encode_frame(m.INFER, 5, x.tobytes())
    for i in range(len(wire)):
        device.write(wire[i : i + 1])  # one byte at a time, as a UART delivers them
    (reply,) = raw_exchange(device, b"")
    assert reply.seq == 5 and reply.type in (m.LOCAL_RESULT, m.OFFLOAD)


def test_back_to_back_requests(device):
    rng = np.random.default_rng(2)
    xs = [random_input(rng) for _ in range(5)]
    wire = b"".join(encode_frame(m.INFER, 100 + i, x.tobytes()) for i, x in enumerate(xs))
    replies = raw_exchange(device, wire)
    assert [r.seq for r in replies] == [100, 101, 102, 103, 104]
    for i, (r, x) in enumerate(zip(replies, xs, strict=True)):
        kind, _, instr = fake_head(x, i + 1)
        reply = m.parse_reply(r, 40)
        assert reply.instructions == instr and (kind == "local") == isinstance(reply, LocalResult)


def test_dedup_resends_without_recomputing(device):
    x = random_input(np.random.default_rng(3))
    wire = encode_frame(m.INFER, 7, x.tobytes())
    (first,) = raw_exchange(device, wire)
    (again,) = raw_exchange(device, wire)
    assert again == first  # byte for byte: the counter (1000 per head run) did not move
    # Same seq, different payload: a new request, computed afresh (second head run).
    y = x.copy()
    y[5] ^= 1
    (other,) = raw_exchange(device, encode_frame(m.INFER, 7, y.tobytes()))
    assert m.parse_reply(other, 40).instructions == fake_head(y, 2)[2]
    # HELLO clears the cache: the first request, resent, is computed again (third run).
    raw_exchange(device, encode_frame(m.HELLO, 8))
    (third,) = raw_exchange(device, wire)
    assert m.parse_reply(third, 40).instructions == fake_head(x, 3)[2]


def _raw_frame(version: int, msg_type: int, seq: int, length: int, payload: bytes) -> bytes:
    raw = struct.pack("<BBHH", version, msg_type, seq, length) + payload
    return cobs.encode(raw + struct.pack("<H", crc16(raw))) + b"\x00"


@pytest.mark.parametrize(
    "wire, code",
    [
        (_raw_frame(2, m.HELLO, 9, 0, b""), 1),
        (_raw_frame(1, 0x55, 9, 0, b""), 2),
        (_raw_frame(1, m.LOCAL_RESULT, 9, 0, b""), 2),
        (_raw_frame(1, m.INFER, 9, 785, bytes(784)), 3),
        (_raw_frame(1, m.HELLO, 9, 1, b"x"), 3),
        (_raw_frame(1, m.INFER, 9, 783, bytes(783)), 4),
        (_raw_frame(1, m.INFER, 9, 0, b""), 4),
        (_raw_frame(1, m.INFER, 9, 785, bytes(785)), 4),
        (_raw_frame(1, m.INFER, 9, 784, bytes([101]) + bytes(783)), 5),
    ],
    ids=["version", "type", "reply-type", "length-field", "hello-payload", "short", "empty", "long", "head-failed"],
)
def test_good_frames_with_bad_content_get_error(device, wire, code):
    (reply,) = raw_exchange(device, wire)
    assert reply.seq == 9 and reply.type == m.ERROR
    err = m.parse_reply(reply)
    assert err.code == code and err.text
    client = DeviceClient(device, timeout=2.0)
    assert client.hello().board == "host-fake"  # still serving


def test_garbage_is_dropped_silently_and_counted(device):
    bad_crc = bytearray(encode_frame(m.INFER, 3, b"\x01" * 784))
    bad_crc[20] ^= 0x02  # a data byte: only the CRC notices
    oversize = b"\x07" * (MAX_ENCODED + 100) + b"\x00"
    bad_cobs = b"\x09ab\x00"
    short = cobs.encode(b"\x01\x02") + b"\x00"
    assert raw_exchange(device, bytes(bad_crc) + oversize + bad_cobs + short, timeout=0.3) == []
    client = DeviceClient(device, timeout=2.0)
    assert client.hello().frames_dropped == 4
    assert isinstance(client.infer(np.zeros(784, np.int8)), LocalResult)


def test_random_garbage_flood_under_sanitizers(tmp_path):
    require_tools("gcc")
    build = _build_module()
    exe = build.build_device(tmp_path, "gcc", sanitize=True)
    rnd = random.Random(1234)
    chunks = []
    for _ in range(400):
        kind = rnd.randrange(4)
        if kind == 0:
            chunks.append(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 80))))
        elif kind == 1:
            n = rnd.choice([0, 1, 783, 784, 785, 1024])
            chunks.append(_raw_frame(1, rnd.choice([1, 2, 0x81, 0x99]) if n != 784 else 2, 1, n, bytes(n)))
        elif kind == 2:
            w = bytearray(encode_frame(m.INFER, rnd.randrange(65536), bytes(rnd.randrange(256) for _ in range(784))))
            w[rnd.randrange(len(w) - 1)] = rnd.randrange(256)  # may break CRC, COBS or the delimiter
            chunks.append(bytes(w))
        else:
            chunks.append(b"\x01" * rnd.randrange(900, 1200))
    stream = b"".join(chunks)  # no BYE among them: it would end the run early
    stream += b"\x00" + encode_frame(m.HELLO, 1) + encode_frame(m.INFER, 2, bytes(784))
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    proc = subprocess.run([exe], input=stream, capture_output=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    frames = [f for f in FrameDecoder().feed(proc.stdout) if isinstance(f, Frame)]
    assert frames[-2].type == m.HELLO_REPLY and frames[-2].seq == 1
    assert m.parse_reply(frames[-2]).frames_dropped > 100
    assert frames[-1].type == m.LOCAL_RESULT and frames[-1].seq == 2


def test_slow_answer_times_out_then_is_discarded_as_stale(device):
    client = DeviceClient(device, timeout=0.4)
    client.hello()
    slow = np.zeros(784, np.int8)
    slow[0] = 100  # the fake head sleeps 1.5 s
    with pytest.raises(LinkTimeout, match="INFER"):
        client.infer(slow)
    client.timeout = 3.0
    ok = client.infer(np.zeros(784, np.int8))
    assert isinstance(ok, LocalResult) and client.stats.stale == 1


def test_head_failure_is_a_device_error(device):
    client = DeviceClient(device, timeout=2.0)
    client.hello()
    x = np.zeros(784, np.int8)
    x[0] = 101
    with pytest.raises(DeviceError) as err:
        client.infer(x)
    assert err.value.code == 5


def test_bye_exits_the_device(device):
    client = DeviceClient(device, timeout=2.0)
    client.hello()
    client.bye()
    assert device.close() == 0


def sparse_input(rng: np.random.Generator, density: float = 0.2) -> np.ndarray:
    x = np.where(rng.random(784) < density, rng.integers(-128, 128, 784), -128).astype(np.int8)
    x[0] = -128
    return x


def test_sparse_infer_gives_the_same_answers(device):
    client = DeviceClient(device, timeout=2.0)
    client.hello()
    rng = np.random.default_rng(7)
    for runs in range(1, 21):
        x = sparse_input(rng, density=rng.choice([0.0, 0.05, 0.2, 0.5]))
        msg_type, payload = client.infer_request(x)
        assert msg_type == m.INFER_SPARSE and len(payload) < 784
        kind, want, instr = fake_head(x, runs)
        reply = client.infer(x)
        assert reply.instructions == instr
        if kind == "local":
            assert (reply.label, reply.confidence_q15) == want
        else:
            np.testing.assert_array_equal(reply.values, want)
        assert client.last_request_wire_len < 794
    client.sparse_inputs = False
    assert client.infer_request(x)[0] == m.INFER


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x01",
        bytes([2, 0x80]) + bytes(98),  # unknown encoding
        bytes([1, 0x80]) + bytes(97),  # bitmap too short
        bytes([1, 0x80]) + b"\x01" + bytes(97),  # one value marked, none carried
        bytes([1, 0x80]) + bytes(98) + b"\x05",  # one value carried, none marked
        bytes([1, 0x80]) + b"\xff" * 98 + bytes(783),  # 784 marked, 783 carried
    ],
    ids=["empty", "no-fill", "encoding", "short-bitmap", "missing-value", "extra-value", "truncated"],
)
def test_malformed_sparse_infer_gets_error(device, payload):
    (reply,) = raw_exchange(device, encode_frame(m.INFER_SPARSE, 4, payload))
    err = m.parse_reply(reply)
    assert reply.type == m.ERROR and err.code == 4
    assert DeviceClient(device, timeout=2.0).hello().frames_dropped == 0


# -- fragmented requests: INFER_PART / INFER_COMMIT / XFER_STATUS --------------


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=900))
def test_c_crc32_matches_zlib(programs, data):
    assert struct.unpack("<I", codec(programs, "crc32", data).stdout)[0] == zlib.crc32(data)


def parts_of(tid: int, msg_type: int, body: bytes, size: int, seq: int = 1) -> tuple[list[bytes], bytes]:
    """The INFER_PART frames of ``body`` in ``size``-byte parts, and its INFER_COMMIT payload."""
    offsets = list(range(0, len(body), size))
    frames = [
        encode_frame(m.INFER_PART, seq, m.part_payload(tid, i, len(offsets), off, body[off : off + size]))
        for i, off in enumerate(offsets)
    ]
    return frames, m.commit_payload(tid, len(offsets), msg_type, body)


def exchange_n(t, wire: bytes, n: int, timeout: float = 5.0) -> list:
    """Send ``wire`` and read exactly ``n`` reply frames (parts are never answered)."""
    t.write(wire)
    dec, out = FrameDecoder(strict_length=False), []
    while len(out) < n:
        data = t.read(timeout)
        assert data, f"only {len(out)} of {n} replies"
        out += dec.feed(data)
    assert len(out) == n
    return out


def test_fragmented_request_reassembles_and_reports_missing_parts(device):
    x = sparse_input(np.random.default_rng(21))
    client = DeviceClient(device, timeout=2.0)
    client.hello()
    msg_type, body = client.infer_request(x)
    assert msg_type == m.INFER_SPARSE
    parts, commit = parts_of(7, msg_type, body, 24)
    count = len(parts)
    kind, want, instr = fake_head(x, 1)
    # Parts 0 and 3 are withheld, the rest arrive out of order and one twice: the COMMIT lists the gap.
    sent = [parts[i] for i in reversed(range(count)) if i not in (0, 3)] + [parts[5]]
    (status,) = exchange_n(device, b"".join(sent) + encode_frame(m.INFER_COMMIT, 30, commit), 1)
    rep = m.parse_reply(status)
    assert status.seq == 30 and isinstance(rep, m.TransferStatus)
    assert (rep.transfer_id, rep.part_count, rep.reason, rep.missing) == (7, count, m.XFER_MISSING, (0, 3))
    # The missing parts and a new COMMIT (new seq): the head runs once.
    (answer,) = exchange_n(device, parts[3] + parts[0] + encode_frame(m.INFER_COMMIT, 31, commit), 1)
    reply = m.parse_reply(answer, 40)
    assert answer.seq == 31 and reply.instructions == instr and (kind == "local") == isinstance(reply, LocalResult)
    # The answer lost: a COMMIT under yet another seq gets it again, re-stamped, not recomputed;
    # the same COMMIT frame twice gets the cached bytes.
    again = exchange_n(device, encode_frame(m.INFER_COMMIT, 32, commit) * 2, 2)
    assert [f.seq for f in again] == [32, 32] and again[0] == again[1]
    assert again[0].payload == answer.payload and again[0].type == answer.type
    # A new transfer id discards the old one: its COMMIT reports every part missing.
    _, commit8 = parts_of(8, msg_type, body, 24)
    (status,) = exchange_n(device, encode_frame(m.INFER_COMMIT, 33, commit8), 1)
    assert m.parse_reply(status).missing == tuple(range(count))
    assert DeviceClient(device, timeout=2.0).hello().frames_dropped == 0


def test_a_wrong_part_never_runs_the_head(device):
    x = sparse_input(np.random.default_rng(22))
    client = DeviceClient(device, timeout=2.0)
    client.hello()
    msg_type, body = client.infer_request(x)
    parts, commit = parts_of(3, msg_type, body, 40)
    # Part 2 carries a wrong byte under a good frame CRC (a CRC-16 escape or a host bug): the body's
    # CRC-32 fails, every part is discarded, nothing runs.
    bad = bytearray(body)
    bad[2 * 40 + 5] ^= 0x10
    bad_parts, _ = parts_of(3, msg_type, bytes(bad), 40)
    wire = b"".join(parts[:2] + [bad_parts[2]] + parts[3:]) + encode_frame(m.INFER_COMMIT, 40, commit)
    (status,) = exchange_n(device, wire, 1)
    rep = m.parse_reply(status)
    assert rep.reason == m.XFER_BAD_CHECK and rep.missing == tuple(range(len(parts)))
    (answer,) = exchange_n(device, b"".join(parts) + encode_frame(m.INFER_COMMIT, 41, commit), 1)
    assert m.parse_reply(answer, 40).instructions == fake_head(x, 1)[2]  # the first head run


def test_dense_input_in_parts(device):
    x = random_input(np.random.default_rng(23))
    parts, commit = parts_of(9, m.INFER, x.tobytes(), 48)
    (answer,) = exchange_n(device, b"".join(parts) + encode_frame(m.INFER_COMMIT, 5, commit), 1)
    kind, want, instr = fake_head(x, 1)
    reply = m.parse_reply(answer, 40)
    assert reply.instructions == instr
    if kind == "offload":
        np.testing.assert_array_equal(reply.values, want)


@pytest.mark.parametrize(
    "payload, code",
    [
        (b"\x01\x00\x01\x04\x10\x00\x00\x00\x00", 3),  # 9 bytes
        (struct.pack("<HBBHI", 1, 0, m.INFER, 784, 0), 4),  # no parts
        (struct.pack("<HBBHI", 1, 65, m.INFER, 784, 0), 4),  # too many parts
        (struct.pack("<HBBHI", 1, 4, m.INFER, 785, 0), 4),  # longer than the input
        (struct.pack("<HBBHI", 1, 4, m.INFER, 0, 0), 4),  # empty
        (struct.pack("<HBBHI", 1, 4, m.HELLO, 100, 0), 4),  # not an INFER
    ],
    ids=["short", "zero-parts", "too-many-parts", "too-long", "empty", "inner-type"],
)
def test_bad_commit_gets_error(device, payload, code):
    (reply,) = exchange_n(device, encode_frame(m.INFER_COMMIT, 9, payload), 1)
    assert reply.seq == 9 and reply.type == m.ERROR and m.parse_reply(reply).code == code


def test_bad_parts_are_dropped_and_counted(device):
    bad = [
        m.part_payload(1, 0, 1, 0, b"")[:6],  # no data
        m.part_payload(1, 4, 4, 0, b"ab"),  # index >= count
        m.part_payload(1, 0, 0, 0, b"ab"),  # zero parts
        m.part_payload(1, 0, 65, 0, b"ab"),  # too many parts
        m.part_payload(1, 0, 4, 783, b"ab"),  # past the input buffer
        m.part_payload(1, 0, 4, 65535, b"ab"),
    ]
    # none is answered: the HELLO's reply is the only one, and counts them
    (hello,) = exchange_n(device, b"".join(encode_frame(m.INFER_PART, 3, p) for p in bad) + encode_frame(m.HELLO, 4), 1)
    assert hello.seq == 4 and m.parse_reply(hello).frames_dropped == len(bad)


def sim_like_c(replay_table: np.ndarray | None = None) -> SimDevice:
    """The Python device with tests/c/link/fake_head.c as its head (same answers, same counter)."""
    runs = [0]

    def head(x: np.ndarray):
        runs[0] += 1
        kind, want, instr = fake_head(x, runs[0])
        if kind == "error":
            return None
        if kind == "local":
            return LocalResult(0, want[0], want[1], instr)
        return Offload(encodings.choose(want, 8, -128), 8, -128, 2.0**-7, instr, want)

    return SimDevice(head, bytes(range(32)), board="host-fake", lean=(8, -128, 2.0**-7), replay_table=replay_table)


@pytest.mark.parametrize("seed", range(4))
def test_c_and_python_devices_agree_on_random_fragment_traffic(device, seed):
    """The same stream of parts, COMMITs (some repeated, under old and new seqs), wrong parts, new
    transfers, whole INFER_SPARSEs and HELLOs, to the C and the Python device: the same replies."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    sim, stream, expected = sim_like_c(), [], 0
    client = DeviceClient.__new__(DeviceClient)
    client.info, client.sparse_inputs = sim.hello, None
    seq = 1
    for tid in range(1, 25):
        x = sparse_input(nrng, density=rng.choice([0.02, 0.2, 0.5]))
        msg_type, body = client.infer_request(x)
        parts, commit = parts_of(tid, msg_type, body, rng.choice([16, 33, 64]), seq)
        for _ in range(rng.randrange(1, 5)):
            chosen = [p for p in parts if rng.random() < 0.7]
            rng.shuffle(chosen)
            stream += chosen
            if rng.random() < 0.15:  # a part with a wrong byte
                i = rng.randrange(len(parts))
                tid_, idx, cnt, off, data = m.parse_part(FrameDecoder().feed(parts[i])[0].payload)
                data = bytes([data[0] ^ 1]) + data[1:]
                stream.append(encode_frame(m.INFER_PART, seq, m.part_payload(tid_, idx, cnt, off, data)))
            seq = seq + 1 if rng.random() < 0.7 else seq
            for _ in range(rng.choice([1, 1, 2])):
                stream.append(encode_frame(m.INFER_COMMIT, seq, commit))
                expected += 1
        if rng.random() < 0.1:
            seq += 1
            stream.append(encode_frame(m.INFER_SPARSE, seq, body))
            expected += 1
        if rng.random() < 0.08:  # a new session, with or without lean answers
            seq += 1
            stream.append(encode_frame(m.HELLO, seq, m.hello_options(m.CAP_LEAN) if rng.random() < 0.5 else b""))
            expected += 1
        seq += 1
    wire = b"".join(stream)
    c_replies = exchange_n(device, wire, expected)
    py_replies = FrameDecoder().feed(sim.feed(wire))
    assert [(f.type, f.seq) for f in c_replies] == [(f.type, f.seq) for f in py_replies]
    for c, p in zip(c_replies, py_replies, strict=True):
        if c.type == m.HELLO_REPLY:
            assert m.Hello.parse(c.payload).model_hash == m.Hello.parse(p.payload).model_hash
        else:
            assert c.payload == p.payload, m.name(c.type)
    kinds = {f.type for f in c_replies}
    assert m.XFER_STATUS in kinds and kinds & {m.LOCAL_RESULT, m.OFFLOAD}


@pytest.mark.parametrize("lean", [False, True])
def test_recovering_client_fragments_through_byte_faults_to_the_c_device(device, lean):
    inj = FaultInjector("drop=0.01,flip=0.001", seed=5)
    client = RecoveringClient(FaultyTransport(device, inj), timeout=0.05, fragment="auto", byte_time=0, lean=lean)
    client.hello(retries=50)
    rng = np.random.default_rng(24)
    for runs in range(1, 41):
        x = sparse_input(rng)
        kind, want, instr = fake_head(x, runs)
        reply = client.infer(x)
        if not lean:
            assert reply.instructions == instr  # exactly one head run per sample: no recomputation
        assert (kind == "local") == isinstance(reply, LocalResult)
        if kind == "offload":
            np.testing.assert_array_equal(reply.values, want)
    rep = client.report()
    assert rep["fragment_transfers"] >= 39 and rep["fragment_statuses"] > 0 and rep["gave_up"] == 0
    assert inj.counts["down"]["drop"] > 100


def test_device_builds_and_serves_with_clang_under_sanitizers(tmp_path):
    require_tools("clang")
    exe = _build_module().build_device(tmp_path, "clang", sanitize=True)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    t = ProcessTransport([str(exe)], env=env)
    try:
        client = DeviceClient(t, timeout=5.0)
        assert client.hello().board == "host-fake"
        x = sparse_input(np.random.default_rng(11))
        kind, want, _ = fake_head(x, 1)
        reply = client.infer(x)
        assert (kind == "local") == isinstance(reply, LocalResult)
        client.bye()
    finally:
        assert t.close() == 0


# -- lean answers and sensor replay ----------------------------------------------------


def test_lean_answers_carry_the_same_results_in_fewer_bytes(device):
    client = DeviceClient(device, timeout=2.0, lean=True)
    client.hello()
    assert client.lean_active
    rng = np.random.default_rng(30)
    kinds = set()
    for runs in range(1, 31):
        x = random_input(rng)
        kind, want, _ = fake_head(x, runs)
        reply = client.infer(x)
        kinds.add(kind)
        assert reply.instructions is None  # lean answers leave the count out
        if kind == "local":
            assert isinstance(reply, LocalResult) and (reply.label, reply.confidence_q15) == want
            assert reply.wire_len == 11  # 18 in full
        else:
            assert isinstance(reply, Offload) and reply.wire_len == 7 + 40  # dense int8: 66 in full
            np.testing.assert_array_equal(reply.values, want)
            assert (reply.zero_point, reply.scale, reply.bits) == (-128, 2.0**-7, 8)
    assert kinds == {"local", "offload"}
    # A HELLO without options ends lean answers: full ones again, with their counts.
    plain = DeviceClient(device, timeout=2.0)
    plain.hello()
    assert plain.infer(random_input(rng)).instructions is not None


def test_a_lean_answer_the_session_did_not_ask_for_is_refused():
    frame = FrameDecoder().feed(encode_lean_frame(m.LEAN_LOCAL, 3, bytes([0, 4, 0, 16])))[0]
    with pytest.raises(ProtocolError, match="did not ask"):
        m.parse_reply(frame, 40)


@pytest.fixture
def table(tmp_path):
    """An input table of 300 random samples, as `mcuflow hil` writes it for QEMU's loader."""
    rng = np.random.default_rng(40)
    x = np.stack([random_input(rng) for _ in range(300)])
    path = tmp_path / "table.bin"
    path.write_bytes(table_bytes(x))
    return x, path


@pytest.fixture
def replay_device(programs, table):
    t = ProcessTransport([str(programs["device"])], env=dict(os.environ, MCUFLOW_REPLAY_TABLE=str(table[1])))
    yield t
    t.close()


@pytest.mark.parametrize("lean", [False, True])
def test_replay_answers_every_sample_under_its_index_then_ends(replay_device, table, lean):
    x = table[0]
    client = DeviceClient(replay_device, timeout=2.0, lean=lean)
    info = client.hello()
    assert info.capabilities & m.CAP_REPLAY and info.replay_count == len(x)
    replay = Replay(client, 250, 50)
    answers = list(replay)
    assert [a.index for a in answers] == list(range(250, 300)) and replay.missing == []
    sums = {"local": 0, "offload": 0}
    for runs, a in enumerate(answers, 1):
        kind, want, instr = fake_head(x[a.index], runs)
        sums[kind] += instr
        assert (kind == "local") == isinstance(a.reply, LocalResult)
        assert a.reply.instructions == (None if lean else instr)
        if kind == "offload":
            np.testing.assert_array_equal(a.reply.values, want)
        else:
            assert (a.reply.label, a.reply.confidence_q15) == want
    t = replay.totals
    assert (t.runs, t.run_samples, t.requests, t.resends, t.stale, t.rejected) == (1, 50, 1, 0, 0, 0)
    assert (t.instructions_local, t.instructions_offload) == (sums["local"], sums["offload"])
    assert sum(a.request_len for a in answers) == len(encode_frame(m.REPLAY, 0, m.replay_payload(0, 0)))


def test_replay_end_is_the_requests_reply_and_a_resend_gets_it_again(replay_device):
    wire = encode_frame(m.REPLAY, 9, m.replay_payload(3, 4))
    frames = exchange_n(replay_device, wire, 5)
    assert [f.seq for f in frames] == [3, 4, 5, 6, 9] and frames[-1].type == m.REPLAY_END
    end = m.parse_reply(frames[-1])
    assert (end.status, end.first, end.run, end.local + end.offload) == (m.REPLAY_DONE, 3, 4, 4)
    (again,) = exchange_n(replay_device, wire, 1)  # the same frame: its END from the cache, no run
    assert again == frames[-1]


@pytest.mark.parametrize(
    "payload, status", [(m.replay_payload(290, 11), m.REPLAY_RANGE), (m.replay_payload(301, 0), m.REPLAY_RANGE)]
)
def test_replay_outside_the_table_is_refused_in_its_end(replay_device, payload, status):
    (end,) = exchange_n(replay_device, encode_frame(m.REPLAY, 2, payload), 1)
    reply = m.parse_reply(end)
    assert (reply.status, reply.run) == (status, 0)


def test_replay_without_a_table_or_with_a_bad_request(device):
    (end,) = exchange_n(device, encode_frame(m.REPLAY, 2, m.replay_payload(0, 1)), 1)
    assert m.parse_reply(end).status == m.REPLAY_NO_TABLE
    (err,) = exchange_n(device, encode_frame(m.REPLAY, 3, b"\x00" * 11), 1)
    assert err.type == m.ERROR and m.ErrorReply.parse(err.payload).code == 3
    client = DeviceClient(device, timeout=2.0)
    client.hello()
    with pytest.raises(ReplayRefused, match="does not offer"):
        list(Replay(client, 0, 1))


def test_a_frame_from_the_host_stops_a_replay_and_is_answered_next(replay_device):
    wire = encode_frame(m.REPLAY, 9, m.replay_payload(0, 300)) + encode_frame(m.HELLO, 10)
    replay_device.write(wire)
    dec, frames = FrameDecoder(), []
    while not frames or frames[-1].type != m.HELLO_REPLY:
        data = replay_device.read(5.0)
        assert data
        frames += dec.feed(data)
    end = m.parse_reply(frames[-2])
    assert frames[-2].type == m.REPLAY_END and end.status == m.REPLAY_STOPPED
    assert 0 < end.run < 300 and len(frames) == end.run + 2


def test_c_and_python_devices_agree_on_replay_and_lean_traffic(replay_device, table):
    sim = sim_like_c(replay_table=table[0])
    stream = [
        encode_frame(m.HELLO, 1, m.hello_options(m.CAP_LEAN)),
        encode_frame(m.REPLAY, 2, m.replay_payload(0, 20)),
        encode_frame(m.REPLAY, 2, m.replay_payload(0, 20)),  # a resend: the END alone
        encode_frame(m.INFER, 3, table[0][7].tobytes()),
        encode_frame(m.HELLO, 4),
        encode_frame(m.REPLAY, 5, m.replay_payload(280, 20)),
        encode_frame(m.REPLAY, 6, m.replay_payload(299, 2)),
    ]
    replies_c, replies_py = [], []
    for wire in stream:  # one at a time: a frame arriving mid-run would stop the C device's run
        py = FrameDecoder().feed(sim.feed(wire))
        replies_py += py
        replies_c += exchange_n(replay_device, wire, len(py))
    assert [(f.type, f.seq) for f in replies_c] == [(f.type, f.seq) for f in replies_py]
    for c, p in zip(replies_c, replies_py, strict=True):
        if c.type != m.HELLO_REPLY:
            assert c.payload == p.payload, m.name(c.type)
    assert m.LEAN_LOCAL in {f.type for f in replies_c} and m.REPLAY_END in {f.type for f in replies_c}


@pytest.mark.parametrize("spec", ["drop=0.01,flip=0.001,dir=up", "drop=0.01,flip=0.001,garbage=0.001"])
def test_replay_recovers_every_sample_through_byte_faults(replay_device, table, spec):
    """Lost and damaged answers are asked for again, a lost REPLAY or REPLAY_END is resent: every sample
    ends with its own, correct answer."""
    x = table[0]
    inj = FaultInjector(spec, seed=8)
    client = RecoveringClient(FaultyTransport(replay_device, inj), timeout=0.2, lean=True)
    client.hello(retries=50)
    replay = Replay(client, 0, 300, timeout=0.2, resends=10, rounds=20)
    answers = {a.index: a for a in replay}
    assert replay.missing == [] and sorted(answers) == list(range(300))
    for i, a in answers.items():
        kind, want, _ = fake_head(x[i], 1)
        assert (kind == "local") == isinstance(a.reply, LocalResult)
        if kind == "offload":
            np.testing.assert_array_equal(a.reply.values, want)
        else:
            assert a.reply.label == want[0] and a.reply.confidence_q15 == want[1]
    assert inj.counts["up"]["drop"] > 10 and replay.totals.asked_again > 0


@pytest.mark.slow
def test_libfuzzer_on_the_serve_loop_finds_nothing(tmp_path):
    """A bounded libFuzzer run (ASan + UBSan) over the receiver, the handlers and the bitmap decoder."""
    require_tools("clang")
    build = _build_module()
    exe = build.compile_program(
        tmp_path / "fuzz_serve",
        [build.LINK_C, HERE / "c" / "link" / "fuzz_serve.c"],
        "clang",
        sanitize=False,
        extra=["-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all"],
    )
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    x = np.full(784, -128, np.int8)
    x[100:130] = 7
    sparse_body = bytes([1, 0x80]) + encodings.bitmap_encode(x, -128)
    seeds = {
        "hello": encode_frame(m.HELLO, 1),
        "infer": encode_frame(m.INFER, 2, bytes(784)),
        "sparse": encode_frame(m.INFER_SPARSE, 3, bytes([1, 0x80]) + encodings.bitmap_encode(x, -128)),
        "bye": encode_frame(m.BYE, 4),
        "parts": b"".join(parts_of(5, m.INFER_SPARSE, sparse_body, 40)[0])
        + encode_frame(m.INFER_COMMIT, 6, parts_of(5, m.INFER_SPARSE, sparse_body, 40)[1]) * 2,
        "dense-parts": b"".join(parts_of(6, m.INFER, bytes(784), 48)[0])
        + encode_frame(m.INFER_COMMIT, 7, parts_of(6, m.INFER, bytes(784), 48)[1]),
        "lean-replay": encode_frame(m.HELLO, 8, m.hello_options(m.CAP_LEAN))
        + encode_frame(m.REPLAY, 9, m.replay_payload(0, 3))
        + encode_frame(m.INFER, 10, bytes(784)),
    }
    for name, data in seeds.items():
        (corpus / name).write_bytes(data)
    proc = subprocess.run(
        [
            str(exe),
            "-runs=30000",
            "-seed=20261122",
            "-max_len=2200",
            *LIBFUZZER_MEMORY_FLAGS,
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],  # fmt: skip
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    assert b"Done 30000 runs" in proc.stderr
