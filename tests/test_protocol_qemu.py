"""Tier 3: the serve loop in real firmware under QEMU (mps2-an386), checked against the
numpy reference over the wire protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import require_tools

from mcuflow import checkpoint, reference
from mcuflow.link import DeviceClient, DeviceError, LocalResult, Offload, SerialTransport
from mcuflow.link import messages as m
from mcuflow.link.frame import encode_frame
from mcuflow.manifest import load_model
from mcuflow.nn.config import build_model, paper_config

pytestmark = [pytest.mark.firmware, pytest.mark.slow]
BOARD = "qemu-mps2-an386"


@pytest.fixture(scope="module")
def firmware(tmp_path_factory):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    from mcuflow.build import build
    from mcuflow.export import export

    d = tmp_path_factory.mktemp("proto_qemu")
    torch.manual_seed(1)
    ckpt = checkpoint.save(build_model(paper_config()), d / "m.pt")
    rng = np.random.default_rng(0)
    calibration = (rng.random((64, 784)) * (rng.random((64, 784)) < 0.2)).astype(np.float32)
    # A low threshold so that some samples exit on the device and some are offloaded.
    export(ckpt, d / "export", calibration=calibration, exit_threshold=0.15)
    result = build(d / "export", BOARD)
    return result.elf, d / "export"


def test_qemu_session_matches_the_reference(firmware):
    from mcuflow.qemu import QemuSession

    elf, export_dir = firmware
    q = load_model(export_dir)
    rng = np.random.default_rng(1)
    x = np.where(rng.random((40, 784)) < 0.2, rng.integers(-128, 128, (40, 784)), -128).astype(np.int8)
    ref = reference.run(q, x)
    with QemuSession(elf, BOARD) as s:
        client = DeviceClient(SerialTransport.wrap(s.serial, s.url), timeout=5.0)
        info = client.hello()
        assert info.board == BOARD and info.model_hash_hex == q.model_hash
        assert (info.input_len, info.intermediate_len) == (784, 40) and info.capabilities & m.CAP_DEDUP
        kinds = set()
        for i in range(len(x)):
            reply = client.infer(x[i])
            assert reply.instructions > 0
            if ref.exited[i]:
                assert isinstance(reply, LocalResult)
                assert (reply.label, reply.confidence_q15) == (ref.label[i], ref.confidence_q15[i])
                kinds.add("local")
            else:
                assert isinstance(reply, Offload)
                np.testing.assert_array_equal(reply.values, ref.intermediate[i])
                kinds.add("offload")
        # A retry (same seq, same bytes) is answered from the cache, byte for byte.
        seq = client.next_seq()
        wire = encode_frame(m.INFER, seq, x[0].tobytes())
        client.transport.write(wire)
        first = client._wait(seq, 5.0)
        client.transport.write(wire)
        assert client._wait(seq, 5.0) == first
        # A bad tensor size gets an ERROR, and the device keeps serving.
        client.info = None
        with pytest.raises(DeviceError) as err:
            client.infer(np.zeros(10, np.int8))
        assert err.value.code == 4
        assert client.hello().frames_dropped == 0
        client.bye()
        assert s.wait(10) == 0
    assert client.stats.stale == 0 and not client.stats.dropped
    assert kinds == {"local", "offload"}, f"exit rate {ref.exited.mean()}: pick another threshold"
