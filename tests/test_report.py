"""The HTML report: self-contained, shows the plots and the parity verdict; its template only prints."""

from __future__ import annotations

import base64
import dataclasses
import json
import re

import pytest
from hil_samples import result

from mcuflow.cli import main
from mcuflow.errors import ConfigError
from mcuflow.hil_result import read_result, write_result
from mcuflow.paths import templates_dir
from mcuflow.report import default_sweep, load_sweep, render

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)]


def test_report_embeds_every_plot_and_the_verdict():
    sweep = [
        {"family": f, "params": p, "accuracy": a}
        for f, p, a in (("sparse", 2450, 0.95), ("deep", 2455, 0.77), ("shallow", 2443, 0.81))
    ]
    html = render(result(), sweep)
    images = _images(html)
    assert len(images) == 4  # memory, trade-off, per-layer, accuracy vs parameters
    assert all(img.startswith(PNG_MAGIC) for img in images)
    assert "PASS" in html and "bit-exact" in html
    assert "index_free" in html and "800→40" in html
    assert "<td>not measured</td>" in html  # no per-layer counts in this result
    assert "http" not in html.replace("http-equiv", "")  # nothing fetched from anywhere


def test_report_without_a_sweep_says_so_instead_of_a_plot():
    html = render(result())
    assert len(_images(html)) == 3
    assert "accuracy vs parameters (run `mcuflow sweep` and pass --sweep): no data in this session." in html


def test_report_says_fail_on_mismatches():
    html = render(result(mismatches=3))
    assert "FAIL: 3 parity mismatches" in html


def test_report_shows_measured_layer_instructions():
    html = render(result(layer_instructions={"head.1": 6212.0, "exits.0.0": 1136.0}))
    assert "<td>6,212</td>" in html and "<td>1,136</td>" in html and "not measured" not in html


def test_report_escapes_what_it_prints():
    html = render(result(board="<script>x</script>", checkpoint="a&b.pt"))
    assert "<script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<code>a&amp;b.pt</code>" in html


def test_report_template_only_prints_prepared_values():
    """No filters, indexing or slicing in the template: report.page computes every value."""
    text = (templates_dir() / "report.html.j2").read_text()
    expressions = re.findall(r"{{(.*?)}}|{%(.*?)%}", text, re.S)
    assert expressions
    for printed, statement in expressions:
        code = printed or statement
        assert "|" not in code and "[" not in code and "(" not in code, code
        if statement:
            assert statement.strip("- ").split()[0] in ("for", "endfor", "if", "else", "endif"), statement


def test_report_command_from_json(tmp_path):
    src = tmp_path / "hil.json"
    write_result(result(), src)
    out = tmp_path / "r" / "report.html"
    assert main(["report", str(src), "-o", str(out)]) == 0
    # the file gives the report the session itself would have written
    assert out.read_text() == render(result(), load_sweep(default_sweep()))


def _written(**changes) -> str:
    value = result().to_json() | changes
    return json.dumps(value)


def _without(*path: str) -> str:
    value = result().to_json()
    inner = value
    for key in path[:-1]:
        inner = inner[key]
    del inner[path[-1]]
    return json.dumps(value)


BAD = {
    "not JSON": ("{not json", "not valid JSON"),
    "another document": (json.dumps({"board": "x"}), "no format_version"),
    "a list": (json.dumps([1, 2]), "expected an object"),
    "no format version": (_without("format_version"), "no format_version"),
    "a newer format version": (_written(format_version=99), "format_version 99"),
    "an older format version": (_written(format_version=1), "format_version 1"),
    "a missing key": (_without("parity_mismatches"), "parity_mismatches: missing"),
    "a wrong type": (_written(samples="many"), "samples: expected an integer"),
    "a nested wrong type": (
        json.dumps(result().to_json() | {"budget": {"flash_bytes": 1, "ram_bytes": None}}),
        "budget.ram_bytes: expected an integer, got null",
    ),
    "an unknown key": (_written(surprise=1), "surprise: unexpected key"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_report_rejects_what_is_not_a_hil_result(tmp_path, case, capsys):
    content, why = BAD[case]
    src = tmp_path / "bad.json"
    src.write_text(content)
    out = tmp_path / "report.html"
    assert main(["report", str(src), "-o", str(out)]) != 0
    err = capsys.readouterr().err
    assert err.startswith("mcuflow: error:") and "Traceback" not in err
    assert why in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
    with pytest.raises(ConfigError):
        read_result(src)


def test_report_of_a_fault_session(tmp_path):
    from hil_samples import fault_result

    src = tmp_path / "hil.json"
    write_result(fault_result(), src)
    assert dataclasses.asdict(read_result(src)) == dataclasses.asdict(fault_result())
    assert "PASS" in render(read_result(src))
