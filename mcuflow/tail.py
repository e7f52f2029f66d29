"""The host tail runner: finish OFFLOAD samples and run whole host-driven sessions.

A :class:`Tail` turns dequantised intermediates ``(N, intermediate_len)`` into
logits. Three back ends, picked by :func:`load_tail`:

- ``numpy``: the torch-free ``tail.npz`` an export writes (``mcuflow.reference.tail_forward``);
- ``onnx``: ``tail.onnx`` through onnxruntime, when it is installed;
- ``torch``: the tail of the checkpoint's SplitNet.

:func:`run_session` drives a :class:`~mcuflow.link.DeviceClient` over a batch of
int8 inputs and yields one :class:`SampleRecord` per input: a lost or refused
sample is a record too, never a gap.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mcuflow.errors import ConfigError, DataError, McuflowError
from mcuflow.link import DeviceClient, DeviceError, LinkTimeout, LocalResult, Offload
from mcuflow.link.errors import LinkError, ProtocolError
from mcuflow.npz import read_npz

BACKENDS = ("auto", "numpy", "onnx", "torch")


class Tail:
    kind = "?"

    def logits(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, offload: Offload) -> int:
        return int(np.argmax(self.logits(offload.dequantize()[None, :])[0]))


class NumpyTail(Tail):
    kind = "numpy"

    def __init__(self, path: Path):
        from mcuflow.reference import tail_forward

        self._z = read_npz(path, "the tail weights")
        self._forward = tail_forward

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self._forward(self._z, np.asarray(x, dtype=np.float32))


class OnnxTail(Tail):
    kind = "onnx"

    def __init__(self, path: Path):
        import onnxruntime as ort

        try:
            self._session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for unreadable models
            raise ConfigError(f"{path} is not a tail onnxruntime can run: {str(err).splitlines()[0][:200]}") from None
        first = self._session.get_inputs()[0]
        self._input = first.name
        # torch's default exporter fixes the batch size it was traced with unless told otherwise
        self._batch = first.shape[0] if first.shape and isinstance(first.shape[0], int) else None
        self._path = path

    def logits(self, x: np.ndarray) -> np.ndarray:
        a = np.asarray(x, dtype=np.float32)
        step = self._batch or len(a) or 1
        try:
            parts = [self._session.run(None, {self._input: a[i : i + step]})[0] for i in range(0, len(a), step)]
        except Exception as err:
            raise ConfigError(f"the tail {self._path} cannot run on inputs of shape {a.shape[1:]}: "
                              f"{str(err).splitlines()[0][:200]}") from None  # fmt: skip
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


class TorchTail(Tail):
    kind = "torch"

    def __init__(self, model):
        self._model = model

    def logits(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self._model.run_tail(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()


def _onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def load_tail(model=None, export_dir: str | Path | None = None, backend: str = "auto") -> Tail:
    """The tail to finish offloaded samples with. ``model`` is a loaded SplitNet (or None)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown tail back end {backend!r}; choose one of {', '.join(BACKENDS)}")
    d = Path(export_dir) if export_dir is not None else None
    fmap = export_intermediate_shape(d)

    def nchw(tail: Tail) -> Tail:
        return NchwTail(tail, fmap) if fmap is not None else tail

    if backend in ("auto", "numpy") and d is not None and (d / "tail.npz").is_file():
        return NumpyTail(d / "tail.npz")
    if backend in ("auto", "onnx") and d is not None and (d / "tail.onnx").is_file():
        if _onnxruntime_available():
            return nchw(OnnxTail(d / "tail.onnx"))
        if backend == "onnx":
            raise ConfigError("--tail onnx needs onnxruntime (pip install onnxruntime)")
    if backend in ("auto", "torch") and model is not None:
        return nchw(TorchTail(model))
    where = f"export {d}" if d is not None else "no export"
    raise ConfigError(
        f"no {backend if backend != 'auto' else ''} tail available ({where}, checkpoint: {model is not None})"
    )


# -- inputs ------------------------------------------------------------------


@dataclass(frozen=True)
class InputQuant:
    """``q = clamp(round(x / scale) + zero_point)``; MNIST pixels use ``x = p / 255``."""

    scale: float = 1.0 / 255.0
    zero_point: int = -128

    @classmethod
    def from_export(cls, export_dir: str | Path) -> InputQuant:
        from mcuflow.manifest import ExportManifest

        q = ExportManifest.read(export_dir).quantization.input
        return cls(q.scale, q.zero_point)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """int8 passes through; uint8 are pixels (x = p/255); floats are x."""
        a = np.asarray(x)
        if a.dtype == np.int8:
            return a
        if a.dtype == np.uint8:
            a = a.astype(np.float64) / 255.0
        elif not np.issubdtype(a.dtype, np.floating):
            raise DataError(f"inputs must be int8 (quantised), uint8 (pixels) or float, got {a.dtype}")
        q = np.round(a.astype(np.float64) / self.scale) + self.zero_point
        return np.clip(q, -128, 127).astype(np.int8)


def load_inputs(path: str | Path, input_len: int) -> np.ndarray:
    """A ``.npy`` of one input or a batch, flattened to ``(N, input_len)``."""
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"cannot read inputs from {path}: {err}") from None
    if not isinstance(a, np.ndarray):  # an .npz archive
        raise DataError(f"{path} is an .npz archive; pass one .npy array of inputs")
    if a.ndim == 0 or a.size % input_len or a.size == 0:
        raise DataError(f"{path} holds {a.shape}; need (N, {input_len}) or a multiple of {input_len} elements")
    if a.size == input_len:
        return a.reshape(1, input_len)
    if a.shape[0] * input_len != a.size:
        raise DataError(f"{path} holds {a.shape}; each sample must have {input_len} elements")
    return a.reshape(a.shape[0], input_len)


# -- sessions ----------------------------------------------------------------


@dataclass
class SampleRecord:
    index: int
    status: str  # "local", "offload", "lost", "error"
    prediction: int | None = None
    truth: int | None = None
    exit_index: int | None = None
    confidence: float | None = None
    instructions: int | None = None
    bytes_down: int = 0
    bytes_up: int = 0
    intermediate: np.ndarray | None = field(default=None, repr=False)
    error: str | None = None

    @property
    def correct(self) -> bool | None:
        if self.truth is None or self.prediction is None:
            return None
        return self.prediction == self.truth

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "intermediate"}
        d["correct"] = self.correct
        return d


@dataclass
class SessionSummary:
    samples: int = 0
    local: int = 0
    offloaded: int = 0
    unfinished: int = 0  # offloads without a host tail to finish them
    lost: int = 0
    errors: int = 0
    correct: int = 0
    labelled: int = 0
    bytes_down: int = 0
    bytes_up: int = 0
    bytes_up_offload: int = 0
    instructions_sum: int = 0
    seconds: float = 0.0

    def add(self, r: SampleRecord) -> None:
        self.samples += 1
        self.bytes_down += r.bytes_down
        self.bytes_up += r.bytes_up
        if r.status == "local":
            self.local += 1
        elif r.status == "offload":
            self.offloaded += 1
            self.unfinished += r.prediction is None
            self.bytes_up_offload += r.bytes_up
        elif r.status == "lost":
            self.lost += 1
        else:
            self.errors += 1
        if r.instructions is not None:
            self.instructions_sum += r.instructions
        if r.correct is not None:
            self.labelled += 1
            self.correct += int(r.correct)

    def as_dict(self) -> dict:
        answered = self.local + self.offloaded
        return {
            "samples": self.samples,
            "answered": answered,
            "local": self.local,
            "offloaded": self.offloaded,
            "unfinished": self.unfinished,
            "lost": self.lost,
            "errors": self.errors,
            "accuracy": self.correct / self.labelled if self.labelled else None,
            "exit_rate": self.local / answered if answered else None,
            "bytes_down_per_sample": self.bytes_down / self.samples if self.samples else None,
            "bytes_up_per_sample": self.bytes_up / self.samples if self.samples else None,
            "bytes_per_offload": self.bytes_up_offload / self.offloaded if self.offloaded else None,
            "device_instructions_mean": self.instructions_sum / answered if answered else None,
            "samples_per_second": self.samples / self.seconds if self.seconds > 0 else None,
            "seconds": self.seconds,
            # A real UART at 115200 baud, 8N1 (10 bits per byte), both directions in turn.
            "link_ms_per_sample_at_115200": (self.bytes_down + self.bytes_up) / self.samples * 10 / 115.2
            if self.samples
            else None,
        }


def run_session(
    client: DeviceClient,
    inputs: np.ndarray,
    tail: Tail | None,
    labels: np.ndarray | None = None,
    summary: SessionSummary | None = None,
    keep_intermediate: bool = False,
    max_consecutive_lost: int = 0,
    on_lost: Callable[[int, DeviceClient], None] | None = None,
) -> Iterator[SampleRecord]:
    """Send each int8 input and yield its record (in order, one per input).

    After ``max_consecutive_lost`` timeouts in a row (0: never) the remaining
    inputs are not sent and are reported as lost. ``on_lost`` is called after
    each timeout (a hook to re-HELLO a reset device, say).
    """
    summary = summary if summary is not None else SessionSummary()
    start = time.monotonic()
    run_of_lost = 0
    link_failure: str | None = None
    for i, x in enumerate(inputs):
        truth = int(labels[i]) if labels is not None else None
        rec = SampleRecord(i, "lost", truth=truth)
        if link_failure is not None:
            rec.error = f"not sent: {link_failure}"
        elif max_consecutive_lost and run_of_lost >= max_consecutive_lost:
            rec.error = f"not sent: {run_of_lost} answers in a row were lost"
        else:
            up_before, down_before = client.stats.bytes_up, client.stats.bytes_down
            try:
                reply = client.infer(x)
                if isinstance(reply, LocalResult):
                    rec.status, rec.prediction = "local", reply.label
                    rec.exit_index, rec.confidence = reply.exit_index, reply.confidence
                else:
                    rec.status, rec.prediction = "offload", None
                    if keep_intermediate:
                        rec.intermediate = reply.values
                    if tail is not None:
                        rec.prediction = tail.predict(reply)
                rec.instructions = reply.instructions
                run_of_lost = 0
            except LinkTimeout as err:
                rec.status, rec.error = "lost", str(err)
                run_of_lost += 1
                if on_lost is not None:
                    on_lost(i, client)
            except (DeviceError, ProtocolError) as err:
                rec.status, rec.error = "error", str(err)
                run_of_lost = 0
            except LinkError as err:  # the port itself failed: this and every later sample is lost
                rec.status, rec.error = "lost", str(err)
                link_failure = f"the link failed ({err})"
            rec.bytes_up = client.stats.bytes_up - up_before
            rec.bytes_down = client.stats.bytes_down - down_before
        summary.add(rec)
        summary.seconds = time.monotonic() - start
        yield rec


def run_replay(
    client: DeviceClient,
    first: int,
    count: int,
    tail: Tail | None,
    labels: np.ndarray | None = None,
    summary: SessionSummary | None = None,
    keep_intermediate: bool = False,
    totals=None,
    **replay_options,
) -> Iterator[SampleRecord]:
    """Sensor replay (:class:`mcuflow.link.replay.Replay`) of table samples ``first .. first + count - 1``:
    one record per sample, indexed from 0 like :func:`run_session`'s, in the order the answers arrived
    (samples recovered in a later round come later), then a "lost" record for each sample no round
    answered. ``labels`` are the ``count`` samples' own; ``totals`` (a ReplayTotals) collects the device's
    REPLAY_END figures; ``replay_options`` go to Replay (period, timeout, resends, rounds)."""
    from mcuflow.link.replay import Replay, ReplayTotals

    summary = summary if summary is not None else SessionSummary()
    replay = Replay(client, first, count, totals=totals if totals is not None else ReplayTotals(), **replay_options)
    start = time.monotonic()

    def finish(rec: SampleRecord) -> SampleRecord:
        summary.add(rec)
        summary.seconds = time.monotonic() - start
        return rec

    for ans in replay:
        i = ans.index - first
        rec = SampleRecord(i, "lost", truth=int(labels[i]) if labels is not None else None)
        rec.bytes_up, rec.bytes_down = ans.wire_len, ans.request_len
        if ans.error is not None:
            rec.status, rec.error = "error", str(ans.error)
        elif isinstance(ans.reply, LocalResult):
            rec.status, rec.prediction = "local", ans.reply.label
            rec.exit_index, rec.confidence = ans.reply.exit_index, ans.reply.confidence
            rec.instructions = ans.reply.instructions
        else:
            rec.status, rec.prediction, rec.instructions = "offload", None, ans.reply.instructions
            if keep_intermediate:
                rec.intermediate = ans.reply.values
            if tail is not None:
                rec.prediction = tail.predict(ans.reply)
        yield finish(rec)
    for index in replay.missing:
        i = index - first
        rec = SampleRecord(i, "lost", truth=int(labels[i]) if labels is not None else None)
        rec.error = f"no answer for replayed sample {index} after {replay.rounds} rounds"
        yield finish(rec)


def check_model_hash(device_hash_hex: str, expected_hex: str, source: str) -> None:
    if device_hash_hex.lower() != expected_hex.lower():
        raise HashMismatch(
            f"the device runs model {device_hash_hex[:16]}..., but {source} is {expected_hex[:16]}...; "
            "flash or build the firmware for this model (or pass the matching --model/--export)"
        )


def export_intermediate_shape(export_dir: str | Path | None) -> tuple[int, int, int] | None:
    """The offloaded feature map's (h, w, c) from an export's manifest (None: a vector, or no export)."""
    if export_dir is None or not (Path(export_dir) / "export.json").is_file():
        return None
    from mcuflow.manifest import ExportManifest

    shape = ExportManifest.read(export_dir).intermediate_shape
    return tuple(shape) if shape and shape[0] * shape[1] > 1 else None  # type: ignore[return-value]


def check_shape(hello, export_dir: str | Path) -> None:
    """A device announcing its shapes (HELLO bit 14) must run the export's; the element counts were checked."""
    if hello.intermediate_shape is None:
        return
    want = export_intermediate_shape(export_dir)
    if want is not None and tuple(hello.intermediate_shape) != want:
        raise HashMismatch(f"the device offloads a {hello.intermediate_shape} feature map, the export {want}")


def hwc_to_nchw(x: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(N, h*w*c) HWC-flattened feature maps -> (N, c*h*w) in torch's NCHW order (``flatten`` of (N, c, h, w))."""
    h, w, c = shape
    a = np.asarray(x)
    return a.reshape(len(a), h, w, c).transpose(0, 3, 1, 2).reshape(len(a), -1)


class NchwTail(Tail):
    """A torch or ONNX tail (NCHW) finishing the device's HWC feature maps: permuted before it runs.
    (``tail.npz`` needs none: the front end permuted its first layer's columns to HWC.)"""

    def __init__(self, inner: Tail, shape: tuple[int, int, int]):
        self._inner, self._shape, self.kind = inner, shape, inner.kind

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self._inner.logits(hwc_to_nchw(x, self._shape))


class HashMismatch(McuflowError):
    """The device carries a different model than the host would finish."""
