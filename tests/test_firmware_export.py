"""Real `mcuflow export` output (the paper-sized model) as firmware: sizes on Cortex-M4 against
the targets, and bit-exact answers from the device under QEMU against the numpy reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_tools
from firmware_helpers import builtin_input, parse_fields

from mcuflow import checkpoint, reference
from mcuflow.build import build
from mcuflow.export import export
from mcuflow.manifest import load_model
from mcuflow.nn.config import build_model, paper_config
from mcuflow.qemu import QemuSession

pytestmark = [pytest.mark.firmware, pytest.mark.slow]


@pytest.fixture(scope="module")
def paper_export(tmp_path_factory) -> Path:
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    d = tmp_path_factory.mktemp("paper")
    torch.manual_seed(0)
    cfg = paper_config("sparse")
    ckpt = checkpoint.save(build_model(cfg), d / "paper.pt", cfg)
    # Untrained weights have the paper model's exact shapes, which is what sizes and counts depend on.
    export(ckpt, d / "export", calibration=_calibration())
    return d / "export"


def _calibration() -> np.ndarray:
    return np.random.default_rng(0).random((64, 784)).astype(np.float32)


@pytest.mark.parametrize("board", ["qemu-mps2-an386", "qemu-mps2-an385"])
def test_export_ram_figure_is_what_the_build_measures(paper_export, board):
    """export.json counts every static buffer of the library: the arena, the kernels' scratch and the exit
    flags; the linker map's model objects hold exactly those (alignment padding aside)."""
    meta = json.loads((paper_export / "export.json").read_text())
    r = build(paper_export, board).report
    assert meta["ram"]["scratch_bytes"] == 840  # the int8 permuted input of the 800 -> 40 layer, 800 + 39, in words
    assert meta["ram"]["static_bytes"] == meta["peak_ram_bytes"]
    assert r["components"]["model"]["ram"] == pytest.approx(meta["ram"]["static_bytes"], abs=4)


def test_paper_model_fits_the_targets_on_cortex_m4(paper_export):
    r = build(paper_export, "qemu-mps2-an386").report  # the protocol firmware, as shipped
    # The device-limits issue asks flash <= 8 KB and static RAM (stack excluded) <= 2 KB. RAM is met: the
    # protocol receives into the kernels' scratch buffer, so its own RAM is the input buffer and the reply
    # buffers (docs/results-firmware.md). Flash: the trained paper model's firmware is 8,176 B <= 8 KB (test
    # above); this untrained one is larger (its exit's table never reaches 0, so it keeps all 256 entries).
    # The bound keeps it from growing.
    assert r["flash_bytes"] <= 8_600, r["components"]
    assert r["ram_bytes"] <= 2 * 1024, r["components"]
    # The fast index-free kernel adds an int8 copy of its input (docs/benchmarks.md); exported with
    # --small-ram it has none, and then the model's RAM is its arena (and the exit flag) alone.
    small_dir = paper_export.parent / "export_small_ram"
    export(paper_export.parent / "paper.pt", small_dir, calibration=_calibration(), small_ram=True)
    small = build(small_dir, "qemu-mps2-an386").report
    comps = small["components"]
    own = sum(c["ram"] for name, c in comps.items() if name != "protocol")
    assert own <= 1024, comps
    # that copy, no more; and no padded copy of the input (the first layer reads it unpadded)
    assert r["components"]["model"]["ram"] <= comps["model"]["ram"] - 800 + 840 + 16  # (+ the exit logits, words)
    assert comps["model"]["ram"] == pytest.approx(
        json.loads((small_dir / "export.json").read_text())["peak_ram_bytes"], abs=4
    )
    assert r["ram_bytes"] == pytest.approx(sum(c["ram"] for c in r["components"].values()), abs=32)  # alignment
    assert r["components"]["model"]["flash"] >= 2000  # 2,000 int8 weights at least


TRAINED = Path(__file__).resolve().parents[1] / "examples" / "paper_sparse.pt"


def test_trained_paper_firmware_sizes_and_the_build_without_fragments(tmp_path):
    """The trained paper model (docs/results-firmware.md): the default firmware keeps every protocol feature in
    <= 8 KB and 2 KB of static RAM (8,176 B: its 8-bit unpruned link leaves the pruning code out). Built
    --no-fragments it is smaller still (7,508 B), says so in HELLO (bit 11 clear), still answers whole INFERs,
    answers INFER_COMMIT as an unknown type, and the recovering host refuses a fixed part size instead of
    silently sending whole frames."""
    from mcuflow.errors import ConfigError
    from mcuflow.link import messages as m
    from mcuflow.link.client import DeviceClient
    from mcuflow.link.errors import DeviceError
    from mcuflow.link.recovery import RecoveringClient
    from mcuflow.link.transport import SerialTransport

    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    board = "qemu-mps2-an386"
    export(TRAINED, tmp_path / "export", calibration=_calibration())
    full = build(tmp_path / "export", board).report
    assert full["fragments"] is True
    assert full["flash_bytes"] <= 8 * 1024, full["components"]
    assert full["ram_bytes"] <= 2 * 1024, full["components"]
    lean = build(tmp_path / "export", board, fragments=False)
    r = lean.report
    assert r["fragments"] is False
    assert r["flash_bytes"] <= 7_600, r["components"]
    assert r["ram_bytes"] <= 2 * 1024, r["components"]
    assert r["components"]["protocol"]["flash"] < full["components"]["protocol"]["flash"] - 600

    model = load_model(tmp_path / "export")
    xs = np.random.default_rng(3).integers(-128, 128, size=(2, model.input_len)).astype(np.int8)
    want = reference.run(model, xs)
    with QemuSession(lean.elf, board) as q:
        client = DeviceClient(SerialTransport.wrap(q.serial, q.url), timeout=5.0)
        hello = client.hello()
        assert not hello.capabilities & m.CAP_FRAGMENT
        assert hello.capabilities & m.CAP_INFER_SPARSE
        for i, x in enumerate(xs):
            reply = client.infer(x)
            assert isinstance(reply, m.LocalResult if want.exited[i] else m.Offload)
        body = xs[0].tobytes()
        frame = client.request(m.INFER_COMMIT, m.commit_payload(1, 1, m.INFER, body))
        with pytest.raises(DeviceError) as err:
            client.parse(frame)
        assert err.value.code == 2  # BAD_TYPE
        with pytest.raises(ConfigError, match="no fragmented requests"):
            RecoveringClient(SerialTransport.wrap(q.serial, q.url), timeout=5.0, fragment=64).hello()
        client.bye()


@pytest.mark.parametrize("board", ["qemu-mps2-an385", "qemu-mps2-an386", "qemu-mps2-an500", "qemu-netduinoplus2"])
def test_device_matches_the_reference_under_qemu(paper_export, board):
    model = load_model(paper_export)
    elf = build(paper_export, board, app="selftest").elf
    rng = np.random.default_rng(1)
    xs = [builtin_input(model.input_len), rng.integers(-128, 128, size=model.input_len).astype(np.int8)]
    want = reference.run(model, np.stack(xs))
    with QemuSession(elf, board, boot_token=b"ready\n") as q:
        lines = q.boot_text.decode().splitlines()
        got = [parse_fields(lines[1])]
        q.write(b"r" + xs[1].tobytes())
        got.append(parse_fields(q.read_until(b"\n").decode()))
    for i, f in enumerate(got):
        assert int(f["exited"]) == want.exited[i]
        if want.exited[i]:
            assert int(f["label"]) == want.label[i] and int(f["conf"]) == want.confidence_q15[i]
        else:
            assert bytes.fromhex(f["inter"]) == want.intermediate[i].tobytes()
        assert 1_000 < int(f["count"]) < 200_000  # instructions per head inference, from SysTick


@pytest.mark.parametrize("board", ["qemu-mps2-an385", "qemu-mps2-an386", "qemu-mps2-an500", "qemu-netduinoplus2"])
def test_protocol_firmware_answers_over_serial(paper_export, board):
    from mcuflow.link.client import DeviceClient
    from mcuflow.link.messages import LocalResult, Offload
    from mcuflow.link.transport import SerialTransport

    model = load_model(paper_export)
    elf = build(paper_export, board).elf
    xs = np.random.default_rng(2).integers(-128, 128, size=(3, model.input_len)).astype(np.int8)
    want = reference.run(model, xs)
    with QemuSession(elf, board) as q:
        client = DeviceClient(SerialTransport.wrap(q.serial, q.url), timeout=5.0)
        hello = client.hello()
        assert hello.board == board and hello.input_len == model.input_len
        # HELLO says how the device's inputs are quantised: the export's own scale and zero point
        assert (hello.input_scale, hello.input_zero_point) == (np.float32(model.input_scale), model.input_zp)
        for i, x in enumerate(xs):
            reply = client.infer(x)
            if want.exited[i]:
                assert isinstance(reply, LocalResult) and reply.label == want.label[i]
            else:
                assert isinstance(reply, Offload)
                assert np.array_equal(reply.values, want.intermediate[i])
            assert 1_000 < reply.instructions < 200_000
        client.bye()
