"""Tier 2: the device's C protocol (firmware/link, firmware/app/serve.c) compiled on the host
and checked against the Python implementation both ways. The serve loop runs over
stdin/stdout with a fake head (tests/c/link/fake_head.c, mirrored by ``fake_head`` below)."""

from __future__ import annotations

import importlib.util
import os
import random
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcuflow.link import DeviceClient, DeviceError, LinkTimeout, LocalResult, Offload, ProcessTransport, cobs, encodings
from mcuflow.link import messages as m
from mcuflow.link.crc import crc16
from mcuflow.link.frame import MAX_ENCODED, Frame, FrameDecoder, FrameDrop, encode_frame
from tests.conftest import require_tools

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
    assert info.capabilities == (0x0F | m.CAP_DEDUP | m.CAP_BYE | m.CAP_INFER_SPARSE) and info.frames_dropped == 0
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
    seeds = {
        "hello": encode_frame(m.HELLO, 1),
        "infer": encode_frame(m.INFER, 2, bytes(784)),
        "sparse": encode_frame(m.INFER_SPARSE, 3, bytes([1, 0x80]) + encodings.bitmap_encode(x, -128)),
        "bye": encode_frame(m.BYE, 4),
    }
    for name, data in seeds.items():
        (corpus / name).write_bytes(data)
    proc = subprocess.run(
        [str(exe), "-runs=30000", "-seed=20261122", "-max_len=2200", "-rss_limit_mb=1024", str(corpus)],
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    assert b"Done 30000 runs" in proc.stderr
