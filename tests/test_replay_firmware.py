"""Tier 3: sensor replay on the real firmware: an input table linked into flash (the hardware self-test,
`mcuflow build --replay-inputs`), run under QEMU and built for a hardware board."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT, require_tools

from mcuflow.cli import main

pytestmark = [pytest.mark.firmware, pytest.mark.slow]
CHECKPOINT = ROOT / "examples" / "paper_sparse.pt"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    from mcuflow import reference
    from mcuflow.data import bundled_test_subset
    from mcuflow.export import export

    d = tmp_path_factory.mktemp("replay_fw")
    export(CHECKPOINT, d / "export", board="qemu-mps2-an386")
    x = reference.pixels_to_input(bundled_test_subset().images[:24])
    np.save(d / "inputs.npy", x)
    return d / "export", d / "inputs.npy", x


def test_a_flash_table_replays_on_the_device_as_its_sensor(exported):
    from mcuflow import reference
    from mcuflow.build import build, load_replay_inputs
    from mcuflow.link import DeviceClient, LocalResult, SerialTransport
    from mcuflow.link.replay import TABLE_HEADER_LEN, Replay
    from mcuflow.manifest import load_model
    from mcuflow.qemu import QemuSession

    export_dir, path, x = exported
    built = build(export_dir, "qemu-mps2-an386", replay_inputs=load_replay_inputs(path, 784))
    table = built.report["components"]["replay"]
    # the header, the samples and the u32 holding the table's size
    assert table["flash"] == table["rodata"] == TABLE_HEADER_LEN + x.size + 4 and table["ram"] == 0
    ref = reference.run(load_model(export_dir), x)
    with QemuSession(built.elf, "qemu-mps2-an386") as q:  # no loader: the table is in the image
        client = DeviceClient(SerialTransport.wrap(q.serial, q.url), timeout=5.0, lean=True)
        assert client.hello().replay_count == len(x)
        answers = list(Replay(client, 0, len(x)))
    assert [a.index for a in answers] == list(range(len(x)))
    for a in answers:
        if ref.exited[a.index]:
            assert isinstance(a.reply, LocalResult) and a.reply.label == ref.label[a.index]
        else:
            np.testing.assert_array_equal(a.reply.values, ref.intermediate[a.index])


def test_the_self_test_table_builds_for_a_hardware_board(exported, tmp_path, capsys):
    export_dir, path, x = exported
    assert main(["build", str(export_dir), "--board", "nucleo-f446re", "--replay-inputs", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"replay {16 + x.size + 4:,}" in out
    bad = tmp_path / "bad.npy"
    np.save(bad, x.astype(np.float32))
    assert main(["build", str(export_dir), "--board", "nucleo-f446re", "--replay-inputs", str(bad)]) != 0
    assert "int8" in capsys.readouterr().err
