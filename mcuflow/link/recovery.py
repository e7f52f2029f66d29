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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcuflow.link import messages as m
from mcuflow.link.client import DeviceClient
from mcuflow.link.errors import LinkError, LinkTimeout, ProtocolError
from mcuflow.link.transport import Transport


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

    def __init__(self, transport: Transport, timeout: float = 0.5, retries: int = 3, rounds: int = 3, **kwargs):
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

    def hello(self, timeout: float | None = None, retries: int | None = None) -> m.Hello:
        info = super().hello(timeout=timeout, retries=retries)
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
                return super().infer(x, timeout=timeout, retries=retries)
            except LinkTimeout as err:
                self.recovery.rounds_failed += 1
                problem = err
            except ProtocolError as err:
                self.recovery.protocol_errors += 1
                problem = err
        self.recovery.gave_up += 1
        raise LinkTimeout(f"no verified answer after {self.rounds} rounds of resends and re-HELLOs ({problem})")

    def report(self) -> dict:
        """Link and recovery counters in one dict (frames sent counts every resend)."""
        s = self.stats
        return {
            **s.as_dict(),
            "frames_sent": s.requests + s.retries,
            "frames_rejected_by_host": sum(s.dropped.values()),
            **self.recovery.as_dict(),
        }
