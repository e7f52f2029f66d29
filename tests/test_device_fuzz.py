"""Tier 3: the real firmware under QEMU is fed >= 10,000 random and mutated frames (oversized
lengths, wrong types and versions, bad CRCs, truncated tensors, malformed sparse inputs,
floods, hostile REPLAYs and HELLO options). It must not hang or fault, and must then still answer a
HELLO, correct INFERs and a correct replay of its input table (checked against mcuflow.reference). The seed is printed; MCUFLOW_FUZZ_SEED overrides it."""

from __future__ import annotations

import os
import random
import struct
import threading
import time

import numpy as np
import pytest
from conftest import ROOT, require_tools

from mcuflow.link import DeviceClient, LocalResult, Offload, SerialTransport, cobs
from mcuflow.link import messages as m
from mcuflow.link.crc import crc16
from mcuflow.link.frame import MAX_ENCODED, encode_frame
from mcuflow.link.replay import Replay, table_bytes

pytestmark = [pytest.mark.firmware, pytest.mark.slow]
BOARD = "qemu-mps2-an386"
FRAMES = 10_000
SEED = int(os.environ.get("MCUFLOW_FUZZ_SEED", "20261122"))
REPLYING = (m.HELLO, m.INFER, m.INFER_SPARSE, m.INFER_COMMIT)
TABLE_SAMPLES = 20  # the input table loaded into the device: the test images checked at the end


def raw_frame(version: int, msg_type: int, seq: int, length: int, payload: bytes, crc_ok: bool = True) -> bytes:
    raw = struct.pack("<BBHH", version, msg_type, seq, length) + payload
    crc = crc16(raw) ^ (0 if crc_ok else 0x1234)
    return cobs.encode(raw + struct.pack("<H", crc)) + b"\x00"


def fuzz_frames(rng: random.Random, n: int, input_len: int) -> list[bytes]:
    """``n`` hostile frames; none is a BYE (which would end the device's session)."""
    out: list[bytes] = []

    def rand_bytes(k: int) -> bytes:
        return bytes(rng.getrandbits(8) for _ in range(k))

    while len(out) < n:
        # Oversized runs and full-size INFERs are few: QEMU's UART takes ~10-20 KB/s, and they
        # exercise nothing new after the first hundred.
        kind = rng.choices(range(14), weights=[14, 14, 14, 12, 14, 14, 10, 2, 4, 2, 8, 6, 6, 4])[0]
        seq = rng.randrange(65536)
        if kind == 0:  # random bytes, delimited
            out.append(rand_bytes(rng.randrange(1, 120)) + b"\x00")
        elif kind == 1:  # good CRC, wrong type or version
            t = rng.choice([0x00, 0x05, 0x7F, 0x81, 0x82, 0x83, 0x84, 0xFF, rng.randrange(256)])
            if t == m.BYE:
                t = 0x99
            out.append(raw_frame(rng.choice([1, 1, 0, 2, 255]), t, seq, 0, b""))
        elif kind == 2:  # length field that lies (oversized or short)
            k = rng.randrange(0, 40)
            length = rng.choice([k + 1, max(0, k - 1), 1024, 1025, 65535, rng.randrange(65536)])
            out.append(raw_frame(1, rng.choice(REPLYING), seq, length, rand_bytes(k)))
        elif kind == 3:  # truncated or overlong tensor with a good CRC
            k = rng.choice([0, 1, input_len - 1, input_len + 1, rng.randrange(1, 200)])
            out.append(encode_frame(m.INFER, seq, rand_bytes(k)))
        elif kind == 4:  # malformed INFER_SPARSE
            bitmap = (input_len + 7) // 8
            body = bytes([rng.choice([0, 1, 2, 3, 255]), rng.getrandbits(8)]) + rand_bytes(
                rng.randrange(0, bitmap + 60)
            )
            out.append(encode_frame(m.INFER_SPARSE, seq, body))
        elif kind == 5:  # a valid request with one byte mutated (bad CRC, broken COBS, early delimiter)
            w = bytearray(encode_frame(rng.choice(REPLYING), seq, b"" if rng.random() < 0.5 else rand_bytes(30)))
            w[rng.randrange(len(w) - 1)] = rng.getrandbits(8)
            out.append(bytes(w))
        elif kind == 6:  # good framing, bad CRC
            out.append(raw_frame(1, rng.choice(REPLYING), seq, 0, b"", crc_ok=False))
        elif kind == 7:  # oversized: no delimiter for longer than any frame
            out.append(b"\x01" * rng.randrange(MAX_ENCODED + 1, MAX_ENCODED + 300) + b"\x00")
        elif kind == 8:  # floods: delimiters, repeated HELLOs, a burst of the same request
            out.append(rng.choice([b"\x00" * rng.randrange(1, 64), encode_frame(m.HELLO, seq) * rng.randrange(2, 6)]))
        elif kind == 9:  # valid dense or sparse INFER with random content: the head must cope with anything
            x = np.frombuffer(rand_bytes(input_len), dtype=np.int8)
            out.append(encode_frame(m.INFER, seq, x.tobytes()))
        elif kind == 10:  # INFER_PARTs: hostile indices, counts, offsets and sizes, or a run of good ones
            tid = rng.choice([1, 2, rng.randrange(65536)])
            if rng.random() < 0.3:
                body = bytes([1, 0x80]) + rand_bytes(rng.randrange(98, 300))
                size = rng.randrange(8, 120)
                offsets = list(range(0, len(body), size))[: m.XFER_MAX_PARTS]
                for i, off in enumerate(offsets):
                    out.append(
                        encode_frame(
                            m.INFER_PART, seq, m.part_payload(tid, i, len(offsets), off, body[off : off + size])
                        )
                    )
                out.append(encode_frame(m.INFER_COMMIT, seq, m.commit_payload(tid, len(offsets), m.INFER_SPARSE, body)))
            else:
                count = rng.choice([0, 1, 8, 64, 65, 255, rng.randrange(256)])
                index = rng.choice([0, count - 1 if count else 0, count, rng.randrange(256)])
                offset = rng.choice([0, input_len - 1, input_len, 65535, rng.randrange(65536)])
                data = rand_bytes(rng.choice([0, 1, 48, input_len, rng.randrange(0, 300)]))
                out.append(
                    encode_frame(
                        m.INFER_PART, seq, struct.pack("<HBBH", tid, count & 0xFF, index & 0xFF, offset) + data
                    )
                )
        elif kind == 12:  # REPLAY: hostile ranges and sizes, now and then a short valid run of the table
            first = rng.choice([0, 1, TABLE_SAMPLES - 1, TABLE_SAMPLES, 2**32 - 1, rng.getrandbits(32)])
            count = rng.choice([0, 1, 2, TABLE_SAMPLES, 2**32 - 1, rng.getrandbits(32)])
            period = rng.choice([0, 0, 0, 1, rng.randrange(1000)])
            payload = m.replay_payload(first, count, period)
            out.append(
                encode_frame(
                    m.REPLAY, seq, payload[: rng.choice([12, 12, 12, 11, 0])] + rand_bytes(rng.choice([0, 0, 1]))
                )
            )
        elif kind == 13:  # HELLO with options (lean answers on and off) or a payload of the wrong size
            k = rng.choice([4, 4, 4, 1, 3, 5, rng.randrange(0, 40)])
            options = struct.pack("<I", rng.choice([m.CAP_LEAN, 0, rng.getrandbits(32)]))
            out.append(encode_frame(m.HELLO, seq, (options + rand_bytes(40))[:k]))
        else:  # INFER_COMMIT with hostile fields (counts, lengths, request types, checks, sizes)
            tid = rng.choice([1, 2, rng.randrange(65536)])
            count = rng.choice([0, 1, 8, 64, 65, rng.randrange(256)])
            inner = rng.choice([m.INFER, m.INFER_SPARSE, m.HELLO, m.BYE, rng.randrange(256)])
            if inner == m.BYE:
                inner = m.INFER
            total = rng.choice([0, 1, input_len, input_len + 1, 65535, rng.randrange(65536)])
            payload = struct.pack("<HBBHI", tid, count, inner, total, rng.getrandbits(32))
            out.append(
                encode_frame(
                    m.INFER_COMMIT, seq, payload[: rng.choice([10, 10, 10, 9, 0])] + rand_bytes(rng.choice([0, 0, 1]))
                )
            )
    return out


class Drain(threading.Thread):
    """Reads everything the device sends, so its UART never stalls while we flood it."""

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock, self.bytes, self.stop = sock, 0, threading.Event()

    def run(self):
        import select

        while not self.stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], 0.05)
            if ready:
                data = self.sock.recv(65536)
                if not data:
                    return
                self.bytes += len(data)


@pytest.fixture(scope="module")
def firmware(tmp_path_factory):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    from mcuflow.build import build
    from mcuflow.export import export

    d = tmp_path_factory.mktemp("device_fuzz")
    export(ROOT / "examples" / "paper_sparse.pt", d / "export", board=BOARD)
    return build(d / "export", BOARD).elf, d / "export"


def test_firmware_survives_10000_hostile_frames_and_still_answers_correctly(firmware):
    from mcuflow import reference
    from mcuflow.data import bundled_test_subset
    from mcuflow.manifest import load_model
    from mcuflow.qemu import QemuSession

    elf, export_dir = firmware
    q = load_model(export_dir)
    rng = random.Random(SEED)
    frames = fuzz_frames(rng, FRAMES, 784)
    print(f"device fuzz: {len(frames)} frames, {sum(map(len, frames)):,} bytes, seed {SEED}")
    images = bundled_test_subset().images[:TABLE_SAMPLES]
    x = reference.pixels_to_input(images)
    table = export_dir.parent / "table.bin"
    table.write_bytes(table_bytes(x))
    with QemuSession(elf, BOARD, replay_table=table) as s:
        sock = s.serial._socket
        drain = Drain(sock)
        drain.start()
        for i in range(0, len(frames), 50):
            sock.sendall(b"".join(frames[i : i + 50]))
        # sendall returns once the sockets buffer the flood (about 1 MB), long before the device has read
        # it at one byte per emulator turn: wait for its first answers (a loaded machine may take seconds)
        deadline = time.monotonic() + 60.0
        while drain.bytes == 0 and time.monotonic() < deadline and s.process.poll() is None:
            time.sleep(0.1)
        drain.stop.set()
        drain.join(timeout=5)
        assert drain.bytes > 0  # it answered the frames with a good CRC along the way
        assert s.process.poll() is None, "QEMU exited during the fuzz run"
        client = DeviceClient(SerialTransport.wrap(s.serial, s.url), timeout=240.0, retries=0)
        info = client.hello()  # it may still be working through the backlog (~50 KB/s)
        assert info.model_hash_hex == q.model_hash and info.frames_dropped > 1000
        client.timeout = 5.0
        backlog = client.stats.stale  # answers to the fuzz frames still in flight before the HELLO
        ref = reference.run(q, x)
        for i in range(len(x)):
            reply = client.infer(x[i])
            if ref.exited[i]:
                assert isinstance(reply, LocalResult)
                assert (reply.label, reply.confidence_q15) == (ref.label[i], ref.confidence_q15[i])
            else:
                assert isinstance(reply, Offload)
                np.testing.assert_array_equal(reply.values, ref.intermediate[i])
        assert client.stats.stale == backlog and backlog > 100
        # The same inputs in parts (fragmented requests), through a link that loses 1% of its bytes.
        from mcuflow.link.faults import FaultInjector, FaultyTransport
        from mcuflow.link.recovery import RecoveringClient

        lossy = FaultyTransport(SerialTransport.wrap(s.serial, s.url), FaultInjector("drop=0.01,flip=0.001", SEED))
        frag = RecoveringClient(lossy, timeout=0.5, fragment=32)
        frag.hello(retries=20)
        for i in range(len(x)):
            reply = frag.infer(x[i])
            if ref.exited[i]:
                assert (reply.label, reply.confidence_q15) == (ref.label[i], ref.confidence_q15[i])
            else:
                np.testing.assert_array_equal(reply.values, ref.intermediate[i])
        assert frag.fragments.transfers == len(x) and frag.fragments.statuses > 0
        # Replayed from its memory with lean answers, through the same lossy link: every sample, correct.
        lean = RecoveringClient(lossy, timeout=0.5, lean=True)
        assert lean.hello(retries=20).replay_count == len(x) and lean.lean_active
        replay = Replay(lean, 0, len(x), timeout=0.5, resends=10, rounds=20)
        answers = {a.index: a.reply for a in replay}
        assert sorted(answers) == list(range(len(x))) and replay.missing == []
        for i, reply in answers.items():
            if ref.exited[i]:
                assert (reply.label, reply.confidence_q15) == (ref.label[i], ref.confidence_q15[i])
            else:
                np.testing.assert_array_equal(reply.values, ref.intermediate[i])
        print(f"device fuzz: {info.frames_dropped} frames dropped by the device, {backlog} answers to the rest")
