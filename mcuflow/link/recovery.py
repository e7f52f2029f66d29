"""A client that survives a flaky link and a rebooting device.

:class:`RecoveringClient` is a :class:`DeviceClient` whose ``infer`` never returns
an answer it has not verified, and never hangs:

1. each request is resent identically (same ``seq``) after a timeout, ``retries``
   times; the device answers a resend from its cache (docs/protocol.md), so a lost
   reply costs no second inference;
2. when every resend timed out, the device may have rebooted (its cache and any
   half frame are gone): the client re-HELLOs, checks that the same model answers
   (hash and lengths), notes a reset when the device's drop counter went
   backwards, and sends the input again under a fresh ``seq``;
3. after ``rounds`` such rounds it raises :class:`LinkTimeout`, which
   :func:`mcuflow.tail.run_session` turns into an explicit "lost" record.

Every accepted reply passed the CRC, carries the request's ``seq`` and parses as
the message its type says (lengths, counts, class and exit ranges). A reply that
passes the CRC but breaks the protocol is treated like a lost one (retried), not
accepted.

With ``fragment`` ("auto" or a part size, mcuflow.link.fragment) a request travels as
INFER_PART frames plus an INFER_COMMIT, and only the parts the device reports missing
are sent again: on a link that loses ~1% of its bytes that is the difference between
~16 whole-frame attempts per sample and one or two rounds of short parts. "auto" sends
single frames until one times out, fragments from then on, and goes back to single
frames once the parts show that a whole frame would get through (>= 90%).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from mcuflow.errors import ConfigError
from mcuflow.link import messages as m
from mcuflow.link.client import DeviceClient
from mcuflow.link.errors import LinkError, LinkTimeout, ProtocolError
from mcuflow.link.fragment import PART_OVERHEAD, FragmentStats, PartSizer, parse_fragment
from mcuflow.link.frame import Frame, encode_frame
from mcuflow.link.transport import Transport

FINAL_ANSWERS = (m.LOCAL_RESULT, m.OFFLOAD)


@dataclass
class RecoveryStats:
    rounds_failed: int = 0  # every resend of one request timed out
    rehellos: int = 0
    resets_detected: int = 0
    protocol_errors: int = 0  # CRC-valid replies that broke the protocol (treated as lost)
    gave_up: int = 0  # samples that ended as a failure record

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class RecoveringClient(DeviceClient):
    """``DeviceClient`` with bounded resends, re-HELLO after a reset and verified answers.

    ``timeout`` bounds each attempt, ``retries`` the resends of one request and
    ``rounds`` the re-HELLO-and-resend rounds of one sample; the worst case for a
    sample is about ``rounds * (retries + 1) * timeout`` plus the HELLOs.
    """

    def __init__(
        self,
        transport: Transport,
        timeout: float = 0.5,
        retries: int = 3,
        rounds: int = 3,
        fragment: str | int | None = "off",
        fragment_attempts: int = 24,
        byte_time: float = 1e-4,
        **kwargs,
    ):
        """``fragment``: "off", "auto" or a part size in bytes; ``fragment_attempts`` bounds the
        COMMIT rounds of one fragmented request (then the re-HELLO round logic takes over);
        ``byte_time`` is the seconds per byte the link needs, added to ``timeout`` for each
        byte a round sends (the parts queue behind each other on a slow UART)."""
        user_hook = kwargs.pop("on_retry", None)

        def before_resend(attempt: int, msg_type: int, seq: int) -> None:
            # A lone delimiter first: a device that kept half a frame (a cut link, a reboot
            # mid-frame) would otherwise glue the resend onto it and drop both.
            self.transport.write(b"\x00")
            self.stats.bytes_down += 1
            if user_hook is not None:
                user_hook(attempt, msg_type, seq)

        super().__init__(transport, timeout=timeout, retries=retries, on_retry=before_resend, **kwargs)
        if rounds < 1:
            raise ValueError("rounds must be >= 1")
        self.rounds = rounds
        self.recovery = RecoveryStats()
        self._baseline: m.Hello | None = None
        self.fragment = parse_fragment(fragment)
        self.fragment_attempts = fragment_attempts
        self.byte_time = byte_time
        self.fragments = FragmentStats()
        self.sizer = PartSizer(self.fragment if isinstance(self.fragment, int) else None)
        self._fragmenting = isinstance(self.fragment, int)  # "auto" starts with whole frames
        self._transfer_id = 1
        # Round-trip estimate of fragmented rounds beyond the bytes' own time (RFC 6298 style).
        self._srtt: float | None = None
        self._rttvar = 0.0

    def hello(self, timeout: float | None = None, retries: int | None = None) -> m.Hello:
        info = super().hello(timeout=timeout, retries=retries)
        if isinstance(self.fragment, int) and not info.capabilities & m.CAP_FRAGMENT:
            raise ConfigError(
                f"--fragment {self.fragment}: this device's firmware has no fragmented requests "
                "(HELLO capability bit 11 clear: built with --no-fragments); use --fragment auto or off"
            )
        base = self._baseline
        if base is not None:
            if (info.model_hash, info.input_len, info.intermediate_len) != (
                base.model_hash,
                base.input_len,
                base.intermediate_len,
            ):
                raise LinkError(
                    f"after a reset the device runs model {info.model_hash_hex[:16]}..., "
                    f"not {base.model_hash_hex[:16]}...; the session cannot continue"
                )
            if info.frames_dropped < base.frames_dropped:
                self.recovery.resets_detected += 1  # the counter only grows until the device reboots
        self._baseline = info
        return info

    def infer(self, x: np.ndarray, timeout: float | None = None, retries: int | None = None):
        problem: LinkError | None = None
        for round_ in range(self.rounds):
            if round_:
                self.transport.write(b"\x00")
                try:
                    self.recovery.rehellos += 1
                    self.hello(timeout=timeout, retries=retries)
                except LinkTimeout as err:
                    problem = err
                    continue
                except ProtocolError as err:
                    self.recovery.protocol_errors += 1
                    problem = err
                    continue
            try:
                return self._infer_once(x, timeout, retries)
            except LinkTimeout as err:
                self.recovery.rounds_failed += 1
                problem = err
            except ProtocolError as err:
                self.recovery.protocol_errors += 1
                problem = err
        self.recovery.gave_up += 1
        raise LinkTimeout(f"no verified answer after {self.rounds} rounds of resends and re-HELLOs ({problem})")

    def report(self) -> dict:
        """Link, recovery and fragment counters in one dict (frames sent counts every resend,
        part and COMMIT copy)."""
        s = self.stats
        return {
            **s.as_dict(),
            "frames_rejected_by_host": sum(s.dropped.values()),
            **self.recovery.as_dict(),
            **self.fragments.as_dict(),
        }

    # -- fragmented requests ------------------------------------------------

    def _can_fragment(self) -> bool:
        return self.fragment != "off" and self.info is not None and bool(self.info.capabilities & m.CAP_FRAGMENT)

    def _infer_once(self, x: np.ndarray, timeout: float | None, retries: int | None):
        if not self._can_fragment():
            return super().infer(x, timeout=timeout, retries=retries)
        if not self._fragmenting:
            try:
                return super().infer(x, timeout=timeout, retries=0)
            except LinkTimeout:
                self._fragmenting = True  # "auto": the link loses whole frames; send parts from now on
                self.fragments.fragment_switches += 1
        msg_type, body = self.infer_request(x)
        reply = self._infer_fragmented(msg_type, body, timeout)
        if self.fragment == "auto" and self.sizer.observations >= 20:
            whole = self.sizer.frame_survival(len(encode_frame(msg_type, 0, body)))
            if whole is not None and whole >= 0.9:
                self._fragmenting = False  # the link got better: whole frames are cheaper again
                self.fragments.fragment_switches += 1
        return reply

    def _round_timeout(self, ceiling: float) -> float:
        """Wait for a round's answer: the smoothed round trip plus four deviations, within
        [5 ms, ``ceiling``]. A round lost to a too-short wait costs only a small COMMIT."""
        if self._srtt is None:
            return ceiling
        return min(max(self._srtt + 4.0 * self._rttvar, 0.005), ceiling)

    def _observe_rtt(self, rtt: float) -> None:
        rtt = max(rtt, 0.0)
        if self._srtt is None:
            self._srtt, self._rttvar = rtt, rtt / 2.0
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt)
            self._srtt = 0.875 * self._srtt + 0.125 * rtt

    def _infer_fragmented(self, msg_type: int, body: bytes, timeout: float | None):
        """Send ``body`` (an INFER or INFER_SPARSE payload) as parts plus INFER_COMMIT, resending the
        parts the device reports missing, until it answers; LinkTimeout after ``fragment_attempts``
        rounds, and no sooner than the whole-frame budget of ``(retries + 1) * timeout``."""
        base = self.timeout if timeout is None else timeout
        fs, sizer = self.fragments, self.sizer
        tid, self._transfer_id = self._transfer_id, (self._transfer_id + 1) & 0xFFFF
        size = sizer.part_size(len(body))
        offsets = list(range(0, len(body), size))
        count = len(offsets)
        parts = [m.part_payload(tid, i, count, off, body[off : off + size]) for i, off in enumerate(offsets)]
        commit = m.commit_payload(tid, count, msg_type, body)
        fs.transfers += 1
        self.stats.requests += 1
        to_send = list(range(count))
        seqs: set[int] = set()
        silent = 0  # rounds in a row without any answer: the wait doubles each time (RFC 6298)
        # A device that reboots answers nothing for a while: give a transfer at least the time
        # budget of whole-frame resends before this round of the recovery counts as failed.
        budget_end = time.monotonic() + (self.retries + 1) * base
        attempt = 0
        while attempt < self.fragment_attempts or time.monotonic() < budget_end:
            seq = self.next_seq()
            seqs.add(seq)
            copies = sizer.commit_copies()
            if attempt:
                to_send = [i for i in to_send for _ in range(sizer.part_copies())]
            # A delimiter before every frame: one lost delimiter then cannot merge two frames.
            wire = b"".join(b"\x00" + encode_frame(m.INFER_PART, seq, parts[i]) for i in to_send)
            wire += (b"\x00" + encode_frame(m.INFER_COMMIT, seq, commit)) * copies
            self.transport.write(wire)
            self.stats.bytes_down += len(wire)
            self.stats.frames_sent += len(to_send) + copies
            fs.parts_sent += len(to_send)
            fs.commits_sent += copies
            if attempt:
                self.stats.retries += 1
                fs.parts_resent += len(to_send)
            if not attempt:
                self.last_request_wire_len = len(wire)

            def accept(frame: Frame, seq: int = seq) -> bool:
                # Any COMMIT of this transfer carried the same body: its answer is this sample's.
                return frame.seq == seq or (frame.seq in seqs and frame.type in FINAL_ANSWERS)

            attempt += 1
            started = time.monotonic()
            wait = min(self._round_timeout(base) * 2**silent, base)
            frame = self._wait(accept, wait + self.byte_time * len(wire))
            if frame is not None and frame.seq == seq:
                self._observe_rtt(time.monotonic() - started - self.byte_time * len(wire))
            if frame is None:
                silent += 1
                fs.commit_timeouts += 1
                self.stats.timeouts += 1
                self._decoder.reset()  # a half frame now is a reply whose delimiter was lost
                to_send = []  # their fate is unknown: ask with a bare COMMIT
                continue
            silent = 0
            try:
                reply = self._parse(frame)
                if isinstance(reply, m.TransferStatus):
                    if (reply.transfer_id, reply.part_count) != (tid, count):
                        raise ProtocolError(f"XFER_STATUS for transfer {reply.transfer_id}, not {tid}")
                else:
                    answer = self._answer(frame)
            except ProtocolError:
                self.recovery.protocol_errors += 1
                to_send = []
                continue
            if isinstance(reply, m.TransferStatus):
                fs.statuses += 1
                if reply.reason == m.XFER_BAD_CHECK:
                    fs.check_failures += 1
                else:
                    once = {i for i in to_send if to_send.count(i) == 1}  # a part sent twice tells less
                    sizer.observe(len(once), len(once - set(reply.missing)), size + PART_OVERHEAD)
                to_send = list(reply.missing)
                continue
            if frame.seq == seq:
                once = [i for i in to_send if to_send.count(i) == 1]
                sizer.observe(len(once), len(once), size + PART_OVERHEAD)
            else:
                fs.late_answers += 1
            self.stats.replies += 1
            return answer
        raise LinkTimeout(f"no answer to a {count}-part {m.name(msg_type)} (transfer {tid}) after {attempt} rounds")
