"""The typed HIL result and its JSON: the keys `mcuflow hil --json` always wrote, plus format_version (tier 1)."""

from __future__ import annotations

import json

import pytest
from hil_samples import fault_result, result

from mcuflow import jsonshape
from mcuflow.errors import ConfigError
from mcuflow.hil import fault_lines, summary_lines
from mcuflow.hil_result import FORMAT_VERSION, HilResult, LinkCounters, read_result, write_result

# The top-level keys of the session dict before it was typed: readers of --json rely on them.
LEGACY_KEYS = [
    "board",
    "qemu_machine",
    "cpu",
    "checkpoint",
    "model_hash",
    "data",
    "exit_threshold",
    "samples",
    "answered",
    "lost",
    "unfinished",
    "errors",
    "accuracy",
    "float_accuracy",
    "float_final_accuracy",
    "reference_accuracy",
    "exit_rate",
    "parity_mismatches",
    "parity_examples",
    "bytes_up_per_sample",
    "bytes_down_per_sample",
    "bytes_per_offload",
    "bytes_per_local_result",
    "device_instructions_mean",
    "device_instructions_local_mean",
    "device_instructions_offload_mean",
    "instruction_unit",
    "layer_instructions",
    "devices",
    "samples_per_second",
    "session_seconds",
    "link_seconds_per_sample_at_115200",
    "samples_per_second_at_115200",
    "link",
    "export_seconds",
    "build_seconds",
    "flash_bytes",
    "ram_bytes",
    "budget",
    "export",
    "components",
    "workdir",
    "wall_seconds",
    "tradeoff",
    "link_compression",
]


def test_json_keeps_every_key_in_order_and_adds_the_format_version():
    value = result().to_json()
    assert list(value) == ["format_version", *LEGACY_KEYS, "quantization", "feed"]
    assert value["format_version"] == FORMAT_VERSION
    assert list(fault_result().to_json()) == ["format_version", *LEGACY_KEYS, "quantization", "feed", "faults"]
    assert value["tradeoff"][0] == {
        "threshold": 0.5,
        "exit_rate": 0.75,
        "offload_rate": 0.25,
        "accuracy": 0.925,
        "bytes_up_per_sample": 40.0,
    }
    assert value["parity_examples"] == []
    assert value["components"]["model"] == {"flash": 4000, "ram": 800, "rodata": 3000}
    layer = value["export"]["layers"]["head"][0]
    assert layer["kernel"] == "mcuflow_fc_index_free" and "more" not in layer  # the export's other fields, flat


def test_a_written_result_reads_back_equal(tmp_path):
    for r in (result(), result(mismatches=3, workdir="/w", layer_instructions={"head.1": 6212.0}), fault_result()):
        path = write_result(r, tmp_path / "hil.json")
        assert read_result(path) == r
        assert json.loads(path.read_text()) == r.to_json()


def test_fault_counters_are_flat_in_json_as_the_link_reports_them():
    link = fault_result().to_json()["link"]
    assert link["frames_sent"] == 101 and link["fragment_parts_sent"] == 20
    assert link["host_dropped_crc"] == 3 and link["faults_down_drop"] == 9 and link["faults_up_frames"] == 110
    assert list(link)[-2:] == ["proxy_reconnects", "device_restarts"]
    assert "faults" not in link and "host_dropped" not in link and "injected" not in link
    assert jsonshape.load(LinkCounters, link, "link") == fault_result().link


def test_link_counters_add_up_over_devices():
    clean = {"requests": 2, "replies": 2, "frames_sent": 3, "bytes_down": 10, "bytes_up": 5}
    clean |= {"retries": 1, "timeouts": 1, "stale": 0, "dropped": {"crc": 1}}  # the per-reason dict is left out
    total = LinkCounters.summed([clean, clean])
    assert total == LinkCounters(4, 4, 6, 20, 10, 2, 2, 0)
    faulty = fault_result().link.to_json()
    other = dict(faulty, host_dropped_short=1)  # a drop reason only one device saw
    other.pop("host_dropped_cobs")
    total = LinkCounters.summed([faulty, other])
    assert total.frames_sent == 202 and total.faults.injected["down"]["drop"] == 18
    assert total.faults.host_dropped == {"crc": 6, "cobs": 2, "short": 1}
    with pytest.raises(RuntimeError, match="brand_new_counter"):
        LinkCounters.summed([faulty | {"brand_new_counter": 1}])


def test_summary_lines_read_the_typed_result():
    lines = summary_lines(result())
    assert lines[0] == "board            qemu-mps2-an386 (cortex-m4, QEMU mps2-an386)"
    assert lines[3] == "early exit       60.00% answered on the device at threshold 0.9"
    assert lines[-2].startswith("link             8b: 33.00 B tensor, 59.00 B on the wire per offload; 4.8x")
    assert lines[-1] == "memory           flash 7,000 of 16,384 B, RAM 3,000 of 4,096 B (static, excluding stack)"
    assert fault_lines(result()) == []
    faults = fault_lines(fault_result())
    assert faults[0] == (
        "faults           drop=0.01 (seed 7): 101 frames sent, 0 resent, 12 rejected (CRC/COBS), "
        "1 re-HELLOs, 0 emulator reboots"
    )
    assert faults[1].startswith("fragments        3 requests in parts: 20 parts sent (4 resent)")


def test_a_result_read_from_a_file_refuses_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        read_result(tmp_path / "none.json")


def test_from_json_names_where_a_value_is_wrong():
    value = result().to_json()
    value["link_compression"]["encodings_used"]["dense"] = 1.5
    with pytest.raises(jsonshape.ShapeError, match=r"link_compression\.encodings_used\.dense: expected an integer"):
        HilResult.from_json(value)
    value = result().to_json()
    value["export"]["layers"]["head"][0]["relu"] = 1
    with pytest.raises(jsonshape.ShapeError, match=r"export\.layers\.head\[0\]\.relu: expected true or false"):
        HilResult.from_json(value)


def test_a_large_quantisation_loss_is_not_a_pass():
    from hil_samples import quantization

    assert result().passed and not result().problems()
    lossy = result(quantization=quantization(loss_points=20.0))
    assert not lossy.passed
    assert lossy.problems() == ["int8 loses 20.00 accuracy points against float (bound 1)"]
