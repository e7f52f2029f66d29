"""Tier 1: sensor replay and lean answers over the Python device (mcuflow.link.replay, mcuflow.link.sim)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from mcuflow.codec import encodings
from mcuflow.link import DeviceClient, LocalResult, Offload
from mcuflow.link import messages as m
from mcuflow.link.faults import FaultInjector
from mcuflow.link.frame import FrameDecoder, encode_frame, encode_lean_frame
from mcuflow.link.recovery import RecoveringClient
from mcuflow.link.replay import (
    MERGE_GAP,
    TABLE_HEADER_LEN,
    Replay,
    ReplayRefused,
    _ranges,
    table_bytes,
    table_capacity,
)
from mcuflow.link.sim import SimDevice, SimTransport
from mcuflow.tail import run_replay


def head(x: np.ndarray):
    """Even sums answer locally (class |sum| % 10), odd ones offload the first 40 inputs."""
    s = int(x.astype(np.int64).sum())
    if s % 2 == 0:
        return LocalResult(0, abs(s) % 10, abs(s) % 32768, 1000 + abs(s) % 7)
    v = x[:40].copy()
    return Offload(encodings.choose(v, 8, -128), 8, -128, 2.0**-7, 2000, v)


@pytest.fixture
def table() -> np.ndarray:
    return np.random.default_rng(1).integers(-128, 128, (120, 784), dtype=np.int8)


def sim(table: np.ndarray | None) -> SimDevice:
    return SimDevice(head, bytes(32), lean=(8, -128, 2.0**-7), replay_table=table)


def test_table_layout_is_header_then_samples(table):
    data = table_bytes(table)
    magic, version, zero, n_in, count, crc = struct.unpack_from("<IBBHII", data)
    assert (magic, version, zero, n_in, count) == (0x5052434D, 1, 0, 784, 120)
    assert crc == zlib.crc32(data[:12]) and len(data) == TABLE_HEADER_LEN + table.size
    assert data[TABLE_HEADER_LEN : TABLE_HEADER_LEN + 784] == table[0].tobytes()
    assert table_capacity(16 * 2**20, 784) == (16 * 2**20 - 16) // 784 == 21399
    with pytest.raises(ValueError):
        table_bytes(table[0])


def test_hello_announces_the_table_and_lean_answers(table):
    client = DeviceClient(SimTransport(sim(table)), timeout=0.05, lean=True)
    info = client.hello()
    assert info.capabilities & m.CAP_LEAN and info.capabilities & m.CAP_REPLAY
    assert (info.lean_bits, info.lean_zero_point, info.lean_scale, info.replay_count) == (8, -128, 2.0**-7, 120)
    assert client.lean_active
    again = m.Hello.parse(info.pack())  # the trailing fields round-trip in capability-bit order
    assert (again.lean_bits, again.replay_count) == (8, 120)


@pytest.mark.parametrize("lean", [False, True])
def test_replay_answers_every_sample_once_in_order(table, lean):
    dev = sim(table)
    client = DeviceClient(SimTransport(dev), timeout=0.05, lean=lean)
    client.hello()
    replay = Replay(client, 10, 100)
    answers = list(replay)
    assert [a.index for a in answers] == list(range(10, 110)) and replay.missing == []
    assert dev.head_runs == 100
    for a in answers:
        want = head(table[a.index])
        assert type(a.reply) is type(want)
        assert a.reply.instructions == (None if lean else want.instructions)
        if isinstance(want, Offload):
            np.testing.assert_array_equal(a.reply.values, want.values)
            assert a.wire_len == (7 + 40 if lean else 66)
        else:
            assert a.reply.label == want.label and a.wire_len == (11 if lean else 18)
    t = replay.totals
    want_local = [head(table[i]) for i in range(10, 110)]
    assert t.local == sum(isinstance(r, LocalResult) for r in want_local)
    assert t.instructions_local == sum(r.instructions for r in want_local if isinstance(r, LocalResult))
    assert t.instructions_offload == 2000 * t.offload


def test_replay_refuses_what_the_device_cannot_do(table):
    client = DeviceClient(SimTransport(sim(None)), timeout=0.05)
    client.hello()
    with pytest.raises(ReplayRefused, match="does not offer"):
        list(Replay(client, 0, 1))
    client = DeviceClient(SimTransport(sim(table)), timeout=0.05)
    client.hello()
    with pytest.raises(ReplayRefused, match="not in the device's input table"):
        list(Replay(client, 100, 21))


def test_a_resent_replay_gets_its_end_alone(table):
    dev = sim(table)
    wire = encode_frame(m.REPLAY, 5, m.replay_payload(0, 3))
    first = FrameDecoder().feed(dev.feed(wire))
    again = FrameDecoder().feed(dev.feed(wire))
    assert [f.seq for f in first] == [0, 1, 2, 5] and again == first[-1:] and dev.head_runs == 3


def test_stale_and_foreign_answers_are_not_taken_for_a_sample(table):
    """Answers with a seq no asked sample has and damaged payloads are counted, not used."""
    dev = sim(table)
    extra = encode_lean_frame(m.LEAN_LOCAL, 7, bytes([0, 3, 0, 1]))  # sample 7: not asked for
    extra += encode_lean_frame(m.LEAN_LOCAL, 20, bytes([0, 99, 0, 1]))  # class 99: breaks the protocol

    sent = []

    def meddle(direction: str, data: bytes) -> bytes:
        if direction == "down":
            sent.append(data)
        elif len(sent) == 3:  # the REPLAY's answers (after the opening delimiter and the HELLO)
            sent.append(b"")
            return extra + data
        return data

    client = DeviceClient(SimTransport(dev, meddle), timeout=0.05, lean=True)
    client.hello()
    replay = Replay(client, 20, 5)
    answers = list(replay)
    assert sorted(a.index for a in answers) == list(range(20, 25)) and replay.missing == []
    assert next(a for a in answers if a.index == 20).reply.label == head(table[20]).label
    assert replay.totals.stale == 1 and replay.totals.rejected == 1


@pytest.mark.parametrize("seed", range(3))
def test_replay_through_faults_and_reboots_answers_every_sample_correctly(table, seed):
    dev = sim(table)
    inj = FaultInjector("drop=0.005,flip=0.001,garbage=0.0005,trunc=0.01,reset=0.005", seed=seed)
    client = RecoveringClient(SimTransport(dev, inj.sim_hook(dev)), timeout=0.01, lean=True)
    client.hello(retries=50)
    replay = Replay(client, 0, 120, timeout=0.01, resends=20, rounds=40)
    answers = {a.index: a for a in replay}
    assert replay.missing == [] and sorted(answers) == list(range(120))
    for i, a in answers.items():
        want = head(table[i])
        if isinstance(want, Offload):
            np.testing.assert_array_equal(a.reply.values, want.values)
        else:
            assert (a.reply.exit_index, a.reply.label, a.reply.confidence_q15) == (0, want.label, want.confidence_q15)
    hits = {k: inj.counts["up"][k] + inj.counts["down"][k] for k in ("drop", "flip", "trunc", "reset")}
    assert hits["drop"] + hits["flip"] > 0, hits
    assert replay.totals.asked_again + replay.totals.resends > 0


def test_what_no_round_recovers_is_reported_lost(table):
    """A link that drops every answer: after the rounds, each sample is an explicit 'lost' record."""
    dev = sim(table)
    mute = SimTransport(dev, fault=lambda direction, data: b"" if direction == "up" else data)
    client = DeviceClient(mute, timeout=0.01)
    client.info = dev.hello
    records = list(run_replay(client, 5, 4, None, np.arange(4), timeout=0.01, resends=1, rounds=2))
    assert [(r.index, r.status) for r in records] == [(0, "lost"), (1, "lost"), (2, "lost"), (3, "lost")]
    assert all("no answer" in r.error for r in records)


def test_missing_samples_close_together_are_asked_for_in_one_replay():
    assert _ranges([1, 2, 3, 7, 8]) == [(1, 3), (7, 2)]
    assert _ranges([1, 2, 3, 7, 8], MERGE_GAP) == [(1, 8)]
    assert _ranges([0, 100], MERGE_GAP) == [(0, 1), (100, 1)]
