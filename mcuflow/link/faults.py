"""Seeded fault injection for the link: a flaky cable in a box.

:class:`FaultInjector` mangles a byte stream frame by frame (it splits at the
0x00 delimiter, so faults land inside frames, where they hurt). Faults:

- ``drop``, ``flip`` (one bit), ``dup`` (byte sent twice), ``insert`` (a random
  byte), ``garbage`` (a burst of 1-16 random bytes), ``delim`` (a stray 0x00):
  each hits a byte with the given probability (``per=byte``, the default) or a
  frame once with that probability (``per=frame``);
- ``trunc``: a frame loses its tail (the delimiter survives);
- ``cut``: the frame is cut mid-way and ``on_cut`` runs (the TCP proxy drops and
  reopens its connection to the emulator: the device keeps a half frame);
- ``reset``: the frame is cut mid-way and ``on_reset`` runs: the device reboots
  (the Python device forgets everything; under QEMU the proxy restarts the
  emulator, see :class:`QemuFaultLink`).

Three ways to use it:

- :class:`FaultyTransport` wraps any :class:`Transport` in memory;
- :class:`FaultProxy` is a TCP proxy between the host and QEMU's ``-serial tcp:``
  (``mcuflow hil --faults drop=0.01,flip=0.001 --fault-seed 7``);
- ``SimTransport(dev, fault=injector.sim_hook(dev))`` for the Python device.

Each direction has its own random stream derived from the seed, so a run is
reproducible however the bytes are chunked in time.
"""

from __future__ import annotations

import collections
import contextlib
import random
import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from mcuflow.errors import ConfigError
from mcuflow.link.transport import Transport

BYTE_FAULTS = ("drop", "flip", "dup", "insert", "garbage", "delim")
FRAME_FAULTS = ("trunc", "cut", "reset")
KINDS = BYTE_FAULTS + FRAME_FAULTS
DIRECTIONS = ("down", "up")  # down: host -> device, up: device -> host


@dataclass(frozen=True)
class FaultSpec:
    """Fault probabilities; ``per`` says whether byte faults count per byte or per frame."""

    rates: dict[str, float] = field(default_factory=dict)
    per: str = "byte"
    directions: tuple[str, ...] = DIRECTIONS

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """``"drop=0.01,flip=0.001"``; also ``per=frame`` and ``dir=down|up|both``."""
        rates: dict[str, float] = {}
        per, directions = "byte", DIRECTIONS
        for item in filter(None, (s.strip() for s in (text or "").split(","))):
            key, sep, value = item.partition("=")
            key = key.strip().lower()
            if not sep:
                raise ConfigError(f"fault {item!r} needs a value (e.g. drop=0.01)")
            if key == "per":
                if value not in ("byte", "frame"):
                    raise ConfigError(f"per={value!r}: choose byte or frame")
                per = value
                continue
            if key == "dir":
                choices = {"down": ("down",), "up": ("up",), "both": DIRECTIONS}
                if value not in choices:
                    raise ConfigError(f"dir={value!r}: choose down, up or both")
                directions = choices[value]
                continue
            if key not in KINDS:
                raise ConfigError(f"unknown fault {key!r}; choose from {', '.join(KINDS)}, per, dir")
            try:
                p = float(value)
            except ValueError:
                raise ConfigError(f"fault rate {item!r} is not a number") from None
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"fault rate {item!r} must be within [0, 1]")
            rates[key] = p
        return cls(rates, per, directions)

    def __str__(self) -> str:
        parts = [f"{k}={self.rates[k]:g}" for k in KINDS if self.rates.get(k)]
        if self.per != "byte":
            parts.append(f"per={self.per}")
        if self.directions != DIRECTIONS:
            parts.append(f"dir={self.directions[0]}")
        return ",".join(parts) or "none"


class FaultInjector:
    """Applies a :class:`FaultSpec` to byte streams; counts what it did in ``counts``."""

    def __init__(
        self,
        spec: FaultSpec | str,
        seed: int,
        on_reset: Callable[[], None] | None = None,
        log=None,
        on_cut: Callable[[], None] | None = None,
    ):
        self.spec = FaultSpec.parse(spec) if isinstance(spec, str) else spec
        self.seed = int(seed)
        self.on_reset = on_reset
        self.on_cut = on_cut
        self._rng = {d: random.Random(f"{self.seed}:{d}") for d in DIRECTIONS}
        self._pending = {d: bytearray() for d in DIRECTIONS}
        self._lock = threading.Lock()
        self.counts: dict[str, dict[str, int]] = {d: dict.fromkeys(("frames", "bytes", *KINDS), 0) for d in DIRECTIONS}
        if log is not None:
            log(f"faults: {self.spec} (seed {self.seed})")

    def apply(self, direction: str, data: bytes) -> bytes:
        """Bytes on their way in ``direction``; returns what arrives. Bytes after the last delimiter
        wait for the rest of their frame (both ends always finish their frames)."""
        with self._lock:
            buf = self._pending[direction]
            buf += data
            end = buf.rfind(0)
            if end < 0:
                return b""
            frames, rest = bytes(buf[: end + 1]), bytes(buf[end + 1 :])
            buf[:] = rest
            if direction not in self.spec.directions or not self.spec.rates:
                self.counts[direction]["frames"] += frames.count(0)
                self.counts[direction]["bytes"] += len(frames)
                return frames
            out = bytearray()
            start = 0
            while start < len(frames):
                stop = frames.index(0, start) + 1
                out += self._frame(direction, frames[start:stop])
                start = stop
            return bytes(out)

    def _frame(self, direction: str, frame: bytes) -> bytes:
        rng, rates, c = self._rng[direction], self.spec.rates, self.counts[direction]
        c["frames"] += 1
        c["bytes"] += len(frame)
        body = frame[:-1]
        for kind in ("reset", "cut"):
            if body and rng.random() < rates.get(kind, 0.0):
                c[kind] += 1
                hook = self.on_reset if kind == "reset" else self.on_cut
                if hook is not None:
                    hook()
                return body[: rng.randrange(len(body))]
        if body and rng.random() < rates.get("trunc", 0.0):
            c["trunc"] += 1
            body = body[: rng.randrange(len(body))]
        byte_rates = [(k, rates.get(k, 0.0)) for k in BYTE_FAULTS if rates.get(k, 0.0) > 0]
        if not byte_rates:
            return body + b"\x00"
        data = body + b"\x00"  # the delimiter can be hit too: two frames merge and both are lost
        if self.spec.per == "frame":
            hits: dict[int, list[str]] = {}
            for kind, p in byte_rates:
                if rng.random() < p:
                    hits.setdefault(rng.randrange(len(data)), []).append(kind)
        else:
            hits = {}
            total = sum(p for _, p in byte_rates)
            # Skip quickly over the (many) clean bytes: one draw per byte, then the kind.
            for i in range(len(data)):
                r = rng.random()
                if r < total:
                    for kind, p in byte_rates:
                        if r < p:
                            hits.setdefault(i, []).append(kind)
                            break
                        r -= p
        if not hits:
            return data
        out = bytearray()
        for i, b in enumerate(data):
            kinds = hits.get(i)
            if not kinds:
                out.append(b)
                continue
            keep = True
            for kind in kinds:
                c[kind] += 1
                if kind == "drop":
                    keep = False
                elif kind == "flip":
                    b ^= 1 << rng.randrange(8)
                elif kind == "insert":
                    out.append(rng.randrange(256))
                elif kind == "garbage":
                    out += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 17)))
                elif kind == "delim":
                    out.append(0)
                elif kind == "dup":
                    out.append(b)
            if keep:
                out.append(b)
        return bytes(out)

    def sim_hook(self, device) -> Callable[[str, bytes], bytes]:
        """A ``SimTransport`` fault hook; a ``reset`` reboots ``device`` (a :class:`SimDevice`)."""
        if self.on_reset is None:
            self.on_reset = device.reset
        return self.apply

    def summary(self) -> dict:
        return {"spec": str(self.spec), "seed": self.seed, "counts": {d: dict(v) for d, v in self.counts.items()}}


class FaultyTransport(Transport):
    """Wraps a transport; everything written and read passes through ``injector``."""

    def __init__(self, inner: Transport, injector: FaultInjector):
        self.inner, self.injector = inner, injector

    def write(self, data: bytes) -> None:
        out = self.injector.apply("down", data)
        if out:
            self.inner.write(out)

    def read(self, timeout: float) -> bytes:
        return self.injector.apply("up", self.inner.read(timeout))

    def close(self) -> None:
        self.inner.close()


class FaultProxy:
    """A TCP proxy that injects faults between a client and ``upstream`` (QEMU's serial socket).

    It listens on 127.0.0.1 (``url`` is the ``socket://`` address to give the host),
    serves one client at a time and forwards both ways through ``injector``. A
    ``cut`` fault closes the upstream connection and opens a new one (QEMU's
    ``server=on`` chardev accepts again): bytes in flight are lost, the device keeps
    the half frame it had received. A ``reset`` fault calls ``restart`` (which
    reboots the device and returns its new address) before reconnecting, or is a
    ``cut`` when there is no ``restart``.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        injector: FaultInjector,
        connect_timeout: float = 5.0,
        restart: Callable[[], tuple[str, int]] | None = None,
    ):
        self.upstream_addr = upstream
        self.injector = injector
        self.connect_timeout = connect_timeout
        self.restart = restart
        self.reconnects = 0
        self.restarts = 0
        if injector.on_reset is None:
            injector.on_reset = self._request_reset
        if injector.on_cut is None:
            injector.on_cut = self._request_reconnect
        # Cuts and resets waiting to be carried out, in order: one chunk of several frames (a
        # fragmented request) can hit more than one, and each is a reconnect (and a reboot).
        self._due: collections.deque[str] = collections.deque()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"socket://127.0.0.1:{self.port}"
        self._upstream = self._connect_upstream()
        self._thread = threading.Thread(target=self._serve, name="mcuflow-fault-proxy", daemon=True)
        self._thread.start()

    def _connect_upstream(self) -> socket.socket:
        s = socket.create_connection(self.upstream_addr, timeout=self.connect_timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(None)
        return s

    def _request_reconnect(self) -> None:
        self._due.append("cut")

    def _request_reset(self) -> None:
        self._due.append("reset")

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.1)
            if not ready:
                continue
            client, _ = self._listener.accept()
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with client:
                self._pump(client)

    def _pump(self, client: socket.socket) -> None:
        while not self._stop.is_set():
            while self._due:
                kind = self._due.popleft()
                with contextlib.suppress(OSError):
                    self._upstream.close()
                if kind == "reset" and self.restart is not None:
                    self.upstream_addr = self.restart()
                    self.restarts += 1
                self._upstream = self._connect_upstream()
                self.reconnects += 1
            up = self._upstream
            ready, _, _ = select.select([client, up], [], [], 0.05)
            for s in ready:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    if s is client:
                        return  # the host hung up; wait for the next one
                    self._stop.set()  # the emulator went away: nothing left to proxy
                    return
                if s is client:
                    out = self.injector.apply("down", data)
                    if out:
                        up.sendall(out)
                else:
                    out = self.injector.apply("up", data)
                    if out:
                        client.sendall(out)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15.0)  # long enough for an emulator restart in progress to finish
        for s in (self._listener, self._upstream):
            with contextlib.suppress(OSError):
                s.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class QemuFaultLink:
    """A :class:`RecoveringClient` to a running ``QemuSession`` through a :class:`FaultProxy`.

    The session's own serial connection is closed and the proxy connects in its
    place (the device only speaks when asked, so nothing is lost in between). A
    ``reset`` fault restarts the emulator (a real reboot: RAM, receiver state and
    reply cache are gone); a ``cut`` only reconnects.
    """

    def __init__(
        self,
        session,
        spec: FaultSpec | str,
        seed: int,
        timeout: float,
        retries: int,
        rounds: int = 3,
        log=None,
        fragment: str | int = "auto",
        lean: bool = False,
    ):
        from mcuflow.link.recovery import RecoveringClient
        from mcuflow.link.transport import open_transport

        self.session = session
        self.injector = FaultInjector(spec, seed, log=log)
        self.proxy = FaultProxy(self._take_over(), self.injector, restart=self._restart)
        transport = open_transport(self.proxy.url, connect_timeout=5.0)
        # QEMU's emulated UART behind a TCP socket moves ~50 KB/s here, far faster than 115200 baud.
        self.client = RecoveringClient(
            transport, timeout=timeout, retries=retries, rounds=rounds, fragment=fragment, byte_time=2e-5, lean=lean
        )

    def _take_over(self) -> tuple[str, int]:
        url = self.session.url or ""
        host, _, port = url.removeprefix("socket://").rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"fault injection needs a socket:// link to the emulator, not {url!r}")
        if self.session.serial is not None:
            self.session.serial.close()
        return host, int(port)

    def _restart(self) -> tuple[str, int]:
        self.session.stop()
        self.session.start()
        return self._take_over()

    def stats(self) -> dict:
        """Link, recovery and injected-fault counters as one flat dict of ints (sums across devices).

        ``device_frames_dropped`` is the device's own count of rejected frames (bad COBS or
        CRC, too short or long), read with a last HELLO."""
        try:
            device_dropped = self.client.hello(retries=10).frames_dropped
        except Exception:  # noqa: BLE001  a summary must not fail the session it summarises
            device_dropped = -1
        out = {k: v for k, v in self.client.report().items() if isinstance(v, int)}
        out["device_frames_dropped"] = device_dropped
        for reason, n in self.client.stats.dropped.items():
            out[f"host_dropped_{reason}"] = n
        for direction, counts in self.injector.counts.items():
            for kind, n in counts.items():
                out[f"faults_{direction}_{kind}"] = n
        out["proxy_reconnects"] = self.proxy.reconnects
        out["device_restarts"] = self.proxy.restarts
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.transport.close()
        self.proxy.close()
