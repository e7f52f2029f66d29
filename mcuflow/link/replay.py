"""Sensor replay, the host side: the device reads its inputs from its own memory, the host only listens.

In the field a device's inputs come from its sensor; only answers cross the link. Under QEMU the host
puts the test inputs in the emulated device's memory before it boots (an *input table*, see
:func:`table_bytes`), asks with one REPLAY request for a range of them, and receives what a deployed
device sends: one LOCAL_RESULT or OFFLOAD per sample, its ``seq`` the sample's table index mod 65536,
then REPLAY_END with the device's own totals (docs/protocol.md, "Sensor replay").

:class:`Replay` drives that and recovers what the link loses: every frame is checked (CRC, type, the
index its ``seq`` maps to must be one asked for and not yet answered), a silent link gets the identical
REPLAY again (the device, if it ran it, answers from its reply cache with the REPLAY_END alone), and
the samples still missing after a run are asked for again, range by range, for a bounded number of
rounds. What never arrives is reported as missing, never guessed.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from mcuflow.link import messages as m
from mcuflow.link.client import DeviceClient
from mcuflow.link.errors import DeviceError, LinkError, ProtocolError
from mcuflow.link.frame import encode_frame

TABLE_MAGIC = 0x5052434D  # "MCRP"
TABLE_VERSION = 1
TABLE_HEADER = struct.Struct("<IBBHI")  # magic, version, 0, input_len, count; then the header's CRC-32
TABLE_HEADER_LEN = TABLE_HEADER.size + 4
# One REPLAY covers at most this many samples, so that a 16-bit seq names one sample of the run unambiguously.
MAX_RUN = 32768
# Samples still missing that lie closer than this are asked for in one REPLAY: the few answers that come
# twice cost less than one more request and its REPLAY_END (about 60 bytes and a round trip).
MERGE_GAP = 16


def table_bytes(inputs: np.ndarray) -> bytes:
    """An input table: the 16-byte header (magic, version, input length, count, CRC-32 of the first 12
    bytes), then the int8 samples back to back, as the device reads them."""
    a = np.ascontiguousarray(inputs, dtype=np.int8)
    if a.ndim != 2 or not a.shape[1]:
        raise ValueError(f"an input table holds (N, input_len) int8 samples, not {a.shape}")
    head = TABLE_HEADER.pack(TABLE_MAGIC, TABLE_VERSION, 0, a.shape[1], a.shape[0])
    return head + struct.pack("<I", zlib.crc32(head)) + a.tobytes()


def table_capacity(region_bytes: int, input_len: int) -> int:
    """How many samples of ``input_len`` bytes a table region of ``region_bytes`` holds."""
    return max(0, (region_bytes - TABLE_HEADER_LEN) // input_len)


class ReplayRefused(LinkError):
    """The device refused a REPLAY (no valid input table, or a range outside it)."""


@dataclass
class ReplayTotals:
    """The device's own totals from its REPLAY_END frames, and how the replay went on the link."""

    runs: int = 0  # REPLAY requests that got their REPLAY_END
    requests: int = 0  # REPLAY requests sent, resends included
    resends: int = 0  # identical REPLAYs after a silent link
    asked_again: int = 0  # samples asked for again after their answer was lost
    stopped: int = 0  # runs the device ended early (a frame from the host arrived mid-run)
    rejected: int = 0  # frames that passed their CRC but broke the protocol
    stale: int = 0  # answers for a sample not asked for, or already answered
    run_samples: int = 0  # samples the device ran, summed over REPLAY_ENDs (a sample asked again counts twice)
    local: int = 0
    offload: int = 0
    instructions_local: int = 0
    instructions_offload: int = 0

    def merge(self, other: ReplayTotals) -> None:
        """Add another device's totals (a farm of devices, one ReplayTotals each)."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def add(self, end: m.ReplayEnd) -> None:
        self.runs += 1
        self.stopped += end.status == m.REPLAY_STOPPED
        self.run_samples += end.run
        self.local += end.local
        self.offload += end.offload
        self.instructions_local += end.instructions_local
        self.instructions_offload += end.instructions_offload

    @property
    def instructions_mean(self) -> float | None:
        n = self.local + self.offload
        return (self.instructions_local + self.instructions_offload) / n if n else None

    @property
    def instructions_local_mean(self) -> float | None:
        return self.instructions_local / self.local if self.local else None

    @property
    def instructions_offload_mean(self) -> float | None:
        return self.instructions_offload / self.offload if self.offload else None


@dataclass
class ReplayAnswer:
    """One sample's answer: ``reply`` is a LocalResult or an Offload, ``error`` the device's refusal."""

    index: int  # the sample's index in the input table
    reply: m.LocalResult | m.Offload | None
    error: DeviceError | None = None
    wire_len: int = 0  # bytes up of this answer
    request_len: int = 0  # bytes down of the REPLAY it answered, on the run's first answer only


@dataclass
class Replay:
    """Replays table samples ``first .. first + count - 1`` through ``client`` (after its HELLO).

    Iterating yields a :class:`ReplayAnswer` per sample that was answered, in the order they arrived
    (recovered ones last); afterwards ``missing`` lists the samples no round got an answer for.
    ``timeout`` is the silence after which a REPLAY is sent again (``resends`` times); the samples still
    missing after a run are asked for again, round after round, until ``rounds`` rounds in a row bring
    no new answer. ``period`` paces the device (counter units between samples).
    """

    client: DeviceClient
    first: int
    count: int
    period: int = 0
    timeout: float = 5.0
    resends: int = 3
    rounds: int = 4
    totals: ReplayTotals = field(default_factory=ReplayTotals)
    missing: list[int] = field(default_factory=list)

    def __iter__(self) -> Iterator[ReplayAnswer]:
        info = self.client.info
        if info is None or not info.capabilities & m.CAP_REPLAY:
            raise ReplayRefused("the device does not offer sensor replay (capability bit 15); say HELLO first")
        if self.first < 0 or self.count < 0 or self.first + self.count > (info.replay_count or 0):
            raise ReplayRefused(
                f"samples {self.first}..{self.first + self.count - 1} are not in the device's input table "
                f"of {info.replay_count} samples"
            )
        answered: set[int] = set()
        todo = _ranges(range(self.first, self.first + self.count))
        fruitless = 0  # rounds in a row that brought no new answer: after `rounds` of them, give up
        while todo and fruitless < self.rounds:
            before = len(answered)
            for start, n in todo:
                for at in range(start, start + n, MAX_RUN):
                    yield from self._run(at, min(MAX_RUN, start + n - at), answered)
            fruitless = 0 if len(answered) > before else fruitless + 1
            todo = _ranges((i for i in range(self.first, self.first + self.count) if i not in answered), MERGE_GAP)
            self.totals.asked_again += sum(1 for s, n in todo for i in range(s, s + n) if i not in answered)
        self.missing = [i for i in range(self.first, self.first + self.count) if i not in answered]

    def _run(self, start: int, n: int, answered: set[int]) -> Iterator[ReplayAnswer]:
        """One REPLAY of samples start .. start + n - 1, until its REPLAY_END or a silent link.

        After ``timeout`` s of silence the identical REPLAY goes again only while nothing of the run has
        arrived (the request may have been lost) or everything has (only its REPLAY_END is missing: the
        device answers from its reply cache); otherwise the samples still missing wait for the next round,
        so a device that rebooted mid-run is not asked to run the whole range again."""
        client, totals = self.client, self.totals
        seq = client.next_seq()
        wire = encode_frame(m.REPLAY, seq, m.replay_payload(start, n, self.period))
        client.send(wire)
        client.stats.requests += 1
        totals.requests += 1
        request_len = len(wire)
        expect = start  # the device answers in table order: the next index a seq can name
        got = silent = 0
        while True:
            frame = client.next_frame(self.timeout)
            if frame is None:
                client.stats.timeouts += 1
                if silent >= self.resends or 0 < got < n:
                    return  # the samples left are asked for again in the next round
                silent += 1
                totals.resends += 1
                totals.requests += 1
                client.stats.retries += 1
                client.send(b"\x00" + wire)  # the delimiter first ends any half frame the device holds
                continue
            silent = 0
            if frame.type == m.REPLAY_END and frame.seq == seq:
                try:
                    end = client.parse(frame)
                except ProtocolError:
                    totals.rejected += 1
                    continue
                if end.status in (m.REPLAY_NO_TABLE, m.REPLAY_RANGE):
                    raise ReplayRefused(f"the device refused REPLAY {start}..{start + n - 1}: {end.status_text}")
                totals.add(end)
                client.stats.replies += 1
                return
            index = expect + ((frame.seq - expect) & 0xFFFF)
            if frame.type == m.REPLAY_END or index >= start + n or index in answered:
                totals.stale += 1  # an answer of an earlier run, a duplicate, or a seq no sample here has
                continue
            try:
                reply = client.answer(frame)
                error = None
            except DeviceError as err:
                reply, error = None, err
            except ProtocolError:
                totals.rejected += 1  # a damaged frame that passed its CRC: the sample stays missing
                continue
            answered.add(index)
            got += 1
            expect = index + 1
            yield ReplayAnswer(index, reply, error, frame.wire_len, request_len)
            request_len = 0


def _ranges(indices, gap: int = 1) -> list[tuple[int, int]]:
    """Increasing indices as (start, count) ranges, one range across any hole shorter than ``gap``."""
    out: list[tuple[int, int]] = []
    for i in indices:
        if out and i - (out[-1][0] + out[-1][1]) < gap:
            out[-1] = (out[-1][0], i - out[-1][0] + 1)
        else:
            out.append((i, 1))
    return out
