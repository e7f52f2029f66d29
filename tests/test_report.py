"""The HTML report: self-contained, shows the plots and the parity verdict."""

from __future__ import annotations

import base64
import json
import re

import pytest

from mcuflow.cli import main
from mcuflow.errors import ConfigError
from mcuflow.report import load_result, render

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _result(mismatches: int = 0) -> dict:
    layer = {
        "name": "head.1",
        "n_in": 800,
        "n_out": 40,
        "degree": 40,
        "pattern": "structured",
        "format": "index_free",
        "nnz": 1600,
        "weight_bytes": 1600,
        "index_bytes": 0,
        "macs": 1600,
        "relu": True,
    }
    return {
        "board": "qemu-mps2-an386",
        "cpu": "cortex-m4",
        "qemu_machine": "mps2-an386",
        "samples": 100,
        "data": "test",
        "checkpoint": "m.pt",
        "model_hash": "ab" * 32,
        "exit_threshold": 0.9,
        "accuracy": 0.95,
        "float_accuracy": 0.951,
        "reference_accuracy": 0.95,
        "exit_rate": 0.6,
        "parity_mismatches": mismatches,
        "lost": 0,
        "bytes_up_per_sample": 30.0,
        "bytes_down_per_sample": 250.0,
        "bytes_per_offload": 66.0,
        "device_instructions_mean": 9000.0,
        "instruction_unit": "instructions",
        "samples_per_second": 100.0,
        "link_seconds_per_sample_at_115200": 0.025,
        "flash_bytes": 7000,
        "ram_bytes": 3000,
        "budget": {"flash_bytes": 16384, "ram_bytes": 4096},
        "components": {"model": {"flash": 4000, "ram": 800}, "app": {"flash": 3000, "ram": 2200}},
        "export": {"layers": {"head": [layer]}, "exits": [], "peak_ram_bytes": 840},
        "tradeoff": [
            {
                "threshold": t,
                "exit_rate": 1 - t / 2,
                "offload_rate": t / 2,
                "accuracy": 0.9 + t / 20,
                "bytes_up_per_sample": 20 + 40 * t,
            }
            for t in (0.5, 0.7, 0.9)
        ],
    }


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)]


def test_report_embeds_every_plot_and_the_verdict():
    sweep = [
        {"family": f, "params": p, "accuracy": a}
        for f, p, a in (("sparse", 2450, 0.95), ("deep", 2455, 0.77), ("shallow", 2443, 0.81))
    ]
    html = render(_result(), sweep)
    images = _images(html)
    assert len(images) == 4  # memory, trade-off, per-layer, accuracy vs parameters
    assert all(img.startswith(PNG_MAGIC) for img in images)
    assert "PASS" in html and "bit-exact" in html
    assert "index_free" in html and "800→40" in html
    assert "http" not in html.replace("http-equiv", "")  # nothing fetched from anywhere


def test_report_says_fail_on_mismatches():
    html = render(_result(mismatches=3))
    assert "FAIL: 3 parity mismatches" in html


def test_report_command_from_json(tmp_path):
    src = tmp_path / "hil.json"
    src.write_text(json.dumps(_result()))
    out = tmp_path / "r" / "report.html"
    assert main(["report", str(src), "-o", str(out)]) == 0
    assert _images(out.read_text())


@pytest.mark.parametrize("content", ["{not json", json.dumps({"board": "x"}), json.dumps([1, 2])])
def test_report_rejects_foreign_json(tmp_path, content, capsys):
    src = tmp_path / "bad.json"
    src.write_text(content)
    out = tmp_path / "report.html"
    assert main(["report", str(src), "-o", str(out)]) != 0
    err = capsys.readouterr().err
    assert err.startswith("mcuflow: error:") and "Traceback" not in err
    assert not out.exists()
    with pytest.raises(ConfigError):
        load_result(src)
