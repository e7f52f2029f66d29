"""Tier 1: the seeded fault injector, the faulty transport and the TCP fault proxy."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

from mcuflow.errors import ConfigError
from mcuflow.link import LocalResult, Offload, open_transport
from mcuflow.link import messages as m
from mcuflow.link.faults import FaultInjector, FaultProxy, FaultSpec, FaultyTransport
from mcuflow.link.frame import Frame, FrameDecoder, encode_frame
from mcuflow.link.recovery import RecoveringClient
from mcuflow.link.sim import SimDevice

HASH = bytes(range(32))


def head(x: np.ndarray):
    s = int(x.astype(np.int64).sum())
    if s % 2 == 0:
        return LocalResult(0, abs(s) % 10, abs(s) % 32768, 1000)
    return Offload(0, 8, -128, 2.0**-7, 2000, x[:40].copy())


def frames(n: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return b"".join(encode_frame(m.INFER, i, rng.integers(0, 256, 200, dtype=np.uint8).tobytes()) for i in range(n))


def test_spec_parses_and_prints():
    spec = FaultSpec.parse("drop=0.01, flip=0.001,per=frame,dir=down")
    assert spec.rates == {"drop": 0.01, "flip": 0.001} and spec.per == "frame" and spec.directions == ("down",)
    assert str(spec) == "drop=0.01,flip=0.001,per=frame,dir=down"
    assert str(FaultSpec.parse("")) == "none"


@pytest.mark.parametrize("bad", ["drop", "drop=x", "drop=1.5", "melt=0.1", "per=word", "dir=sideways"])
def test_bad_spec_is_a_user_error(bad):
    with pytest.raises(ConfigError):
        FaultSpec.parse(bad)


def test_no_faults_pass_everything_through_in_any_chunking():
    data = frames(5)
    inj = FaultInjector("", seed=1)
    out = b"".join(inj.apply("down", data[i : i + 37]) for i in range(0, len(data), 37))
    assert out == data and inj.counts["down"]["frames"] == 5


def test_faults_are_reproducible_from_the_seed_whatever_the_chunking():
    data = frames(50)
    spec = "drop=0.001,flip=0.001,dup=0.0005,insert=0.0005,garbage=0.0005,delim=0.0005,trunc=0.05"
    a = FaultInjector(spec, seed=7).apply("down", data)
    inj = FaultInjector(spec, seed=7)
    b = b"".join(inj.apply("down", data[i : i + 100]) for i in range(0, len(data), 100))
    c = FaultInjector(spec, seed=8).apply("down", data)
    assert a == b and a != data and c != a
    # Every bad frame is rejected by the CRC/COBS check; only untouched frames decode.
    decoded = [f for f in FrameDecoder().feed(a) if isinstance(f, Frame)]
    originals = {f.seq: f.payload for f in FrameDecoder().feed(data)}
    assert 0 < len(decoded) < 50
    assert all(originals[f.seq] == f.payload for f in decoded)


@pytest.mark.parametrize(
    "kind,check",
    [
        ("drop", lambda src, out: len(out) == len(src) - 1),
        ("dup", lambda src, out: len(out) == len(src) + 1),
        ("insert", lambda src, out: len(out) == len(src) + 1),
        ("garbage", lambda src, out: len(src) + 1 <= len(out) <= len(src) + 16),
        ("delim", lambda src, out: out.count(0) == src.count(0) + 1),
        ("trunc", lambda src, out: len(out) < len(src) and out.endswith(b"\x00")),
        (
            "flip",
            lambda src, out: (
                len(out) == len(src) and sum(bin(a ^ b).count("1") for a, b in zip(src, out, strict=True)) == 1
            ),
        ),
    ],
)
def test_each_fault_does_what_it_says(kind, check):
    src = encode_frame(m.INFER, 3, bytes(range(1, 200)))
    inj = FaultInjector(f"{kind}=1,per=frame", seed=3)
    out = inj.apply("up", src)
    assert check(src, out), (kind, len(src), len(out))
    assert inj.counts["up"][kind] == 1


def test_reset_cuts_the_frame_and_calls_back():
    calls = []
    inj = FaultInjector("reset=1", seed=2, on_reset=lambda: calls.append(1))
    src = encode_frame(m.HELLO, 1)
    out = inj.apply("down", src)
    assert calls == [1] and len(out) < len(src) and 0 not in out


def test_direction_filter_and_seed_is_logged():
    lines = []
    inj = FaultInjector("drop=1,dir=up", seed=99, log=lines.append)
    src = encode_frame(m.HELLO, 1)
    assert inj.apply("down", src) == src and inj.apply("up", src) == b""
    assert lines == ["faults: drop=1,dir=up (seed 99)"]


def _sim_server(dev: SimDevice) -> tuple[socket.socket, threading.Thread, list]:
    """The Python device behind a TCP socket that, like QEMU's server=on chardev, accepts again."""
    listener = socket.create_server(("127.0.0.1", 0))
    conns: list = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conns.append(conn)
            with conn:
                while True:
                    try:
                        data = conn.recv(4096)
                    except OSError:
                        break
                    if not data:
                        break
                    out = dev.feed(data)
                    if out:
                        conn.sendall(out)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return listener, t, conns


@pytest.mark.parametrize("lean", [False, True])
def test_proxy_with_faults_and_reconnects_still_gives_verified_answers(lean):
    dev = SimDevice(head, HASH, lean=(8, -128, 2.0**-7))
    listener, _, conns = _sim_server(dev)
    inj = FaultInjector("drop=0.0003,flip=0.0003,reset=0.03,dir=down", seed=5)
    try:
        with FaultProxy(listener.getsockname(), inj) as proxy:
            t = open_transport(proxy.url, connect_timeout=5)
            client = RecoveringClient(t, timeout=0.1, retries=3, rounds=4, lean=lean)
            client.hello()
            assert client.lean_active == lean
            rng = np.random.default_rng(4)
            for _ in range(60):
                x = rng.integers(-128, 128, 784).astype(np.int8)
                reply = client.infer(x)
                want = head(x)
                assert type(reply) is type(want)
                if isinstance(want, LocalResult):
                    assert reply.label == want.label
                else:
                    np.testing.assert_array_equal(reply.values, want.values)
            t.close()
            assert inj.counts["down"]["reset"] > 0 and proxy.reconnects == inj.counts["down"]["reset"]
            assert len(conns) == 1 + proxy.reconnects
            assert client.stats.retries > 0
    finally:
        listener.close()


def test_faulty_transport_wraps_any_transport():
    from mcuflow.link import loopback_pair

    a, b = loopback_pair()
    ft = FaultyTransport(a, FaultInjector("drop=1,per=frame,dir=down", seed=1))
    src = encode_frame(m.HELLO, 1)
    ft.write(src)
    assert len(b.read(0.1)) == len(src) - 1
    b.write(src)
    assert ft.read(0.1) == src
