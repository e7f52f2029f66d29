"""Fragmented requests with selective repeat (docs/protocol.md, "Fragmented requests").

On a link that loses bytes, a ~260-byte INFER_SPARSE frame arrives whole only rarely
(0.989^260 = 6% at 1% drop + 0.1% flips per byte), so resending the whole frame takes
~16 tries. Cut into parts of a few dozen bytes, most parts arrive; the device says which
did not (XFER_STATUS) and only those are sent again.

This module holds the host's bookkeeping: how big a part should be (:class:`PartSizer`,
from the survival of the parts sent so far), the counters (:class:`FragmentStats`) and
the ``--fragment`` setting (:func:`parse_fragment`). The exchange itself is
``RecoveringClient._infer_fragmented`` (mcuflow.link.recovery).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mcuflow.errors import ConfigError
from mcuflow.link import messages as m

# Wire bytes around a part's data: a leading delimiter, the frame header, the part header,
# the CRC, one COBS code and the closing delimiter.
PART_OVERHEAD = 1 + 6 + m.PART_HEADER_LEN + 2 + 1 + 1
COMMIT_WIRE = 1 + 6 + m.COMMIT_LEN + 2 + 1 + 1
REPLY_WIRE = 20  # an XFER_STATUS or LOCAL_RESULT on the wire, roughly
MIN_PART, MAX_PART, DEFAULT_PART = 8, 240, 32


def parse_fragment(value: str | int | None) -> str | int:
    """``--fragment``: "off", "auto" or a part size in bytes."""
    if value is None:
        return "off"
    text = str(value).strip().lower()
    if text in ("off", "auto"):
        return text
    try:
        size = int(text)
    except ValueError:
        raise ConfigError(f"--fragment {value!r}: choose auto, off or a part size in bytes") from None
    if not MIN_PART <= size <= MAX_PART:
        raise ConfigError(f"--fragment {size}: a part carries {MIN_PART}..{MAX_PART} bytes")
    return size


@dataclass
class FragmentStats:
    transfers: int = 0  # requests sent in parts
    parts_sent: int = 0  # every part frame, resends included
    parts_resent: int = 0
    commits_sent: int = 0  # every INFER_COMMIT frame, copies included
    statuses: int = 0  # XFER_STATUS answers (the device listed missing parts)
    check_failures: int = 0  # the reassembled body failed its CRC-32 (all parts sent again)
    commit_timeouts: int = 0  # rounds without an answer (COMMIT or its answer lost)
    late_answers: int = 0  # answers to an earlier COMMIT of the same transfer (taken: same body)
    fragment_switches: int = 0  # "auto" turned fragmenting on or off

    def as_dict(self) -> dict:
        return {f"fragment_{k}" if not k.startswith("fragment") else k: v for k, v in self.__dict__.items()}


class PartSizer:
    """Picks the part size from how many parts arrive.

    A part of ``d`` data bytes costs ``d + o`` wire bytes (``o`` = :data:`PART_OVERHEAD`) and
    arrives with probability ``q^(d + o)`` for a per-byte survival ``q``; the useful bytes per
    wire byte, ``d q^(d+o) / (d+o)``, peak at ``d = (sqrt(o^2 + 4o/L) - o) / 2`` with
    ``L = -ln q``. ``L`` is estimated from the parts sent (exponentially forgetting old
    observations), so the size follows the link. A fixed size overrides it.
    """

    def __init__(self, fixed: int | None = None, decay: float = 0.98):
        self.fixed = fixed
        self.decay = decay
        self.sent = 0.0  # decayed counts of parts whose fate is known
        self.arrived = 0.0
        self.wire = 0.0  # decayed wire bytes of those parts
        self.last_size = DEFAULT_PART

    def observe(self, sent: int, arrived: int, wire_per_part: float) -> None:
        if sent <= 0:
            return
        k = self.decay**sent
        self.sent = self.sent * k + sent
        self.arrived = self.arrived * k + arrived
        self.wire = self.wire * k + sent * wire_per_part

    @property
    def observations(self) -> float:
        return self.sent

    def loss_rate(self) -> float | None:
        """Estimated ``-ln q`` per wire byte, or None before any observation."""
        if self.sent < 1.0:
            return None
        survival = (self.arrived + 0.5) / (self.sent + 1.0)
        return max(-math.log(min(survival, 1.0)), 0.0) / (self.wire / self.sent)

    def frame_survival(self, wire_len: int) -> float | None:
        rate = self.loss_rate()
        return None if rate is None else math.exp(-rate * wire_len)

    def part_size(self, body_len: int) -> int:
        if self.fixed is not None:
            size = self.fixed
        else:
            rate = self.loss_rate()
            if rate is None:
                size = DEFAULT_PART
            elif rate <= 1e-6:
                size = MAX_PART
            else:
                o = PART_OVERHEAD
                size = int(round((math.sqrt(o * o + 4 * o / rate) - o) / 2))
            size = min(max(size, MIN_PART), MAX_PART)
        size = max(size, -(-body_len // m.XFER_MAX_PARTS))  # at most XFER_MAX_PARTS parts
        count = -(-body_len // size)
        self.last_size = -(-body_len // count)  # equal parts: the last one is not a stub
        return self.last_size

    def commit_copies(self) -> int:
        """COMMIT copies per round: each copy gets an answer back with probability ``s r`` (the COMMIT
        and a short answer both arrive), so ``c`` copies leave a round unanswered with probability
        ``(1 - s r)^c``; a silent round costs a whole timeout, an extra copy ~20 bytes. The fewest
        copies that keep that under 3% (at most 4; 2 before anything is known)."""
        s = self.frame_survival(COMMIT_WIRE)
        if s is None:
            return 2
        r = self.frame_survival(REPLY_WIRE) or 0.0
        for copies in range(1, 4):
            if (1.0 - s * r) ** copies <= 0.03:
                return copies
        return 4

    def part_copies(self) -> int:
        """Copies of each part resent after a missing-part report: two while parts are lost often,
        so the last few missing parts do not each cost another round trip."""
        s = self.frame_survival(self.last_size + PART_OVERHEAD)
        return 2 if s is not None and s < 0.75 else 1
