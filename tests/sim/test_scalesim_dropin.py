"""`accelkit scalesim` as a drop-in: it accepts what scalesim 3.0.0 accepts, and its refusals say what to change.

Every topology and config is written by the test itself; the cases are the ones found by parsing the 131 topology
files scale-sim-v3 ships with both tools (trailing fields, empty files, conv rows under `-i gemm`, BOMs).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from accelkit.sim.scalesim import cli as scalesim_cli
from accelkit.sim.scalesim.config import ConfigError, read_config
from accelkit.sim.scalesim.reports import BANDWIDTH_HEADER, COMPUTE_HEADER, DETAIL_HEADER
from accelkit.sim.scalesim.topology import read_topology

CONV_HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
CFG = """[general]
run_name = dropin

[architecture_presets]
ArrayHeight: 8
ArrayWidth: 8
IfmapSramSzkB: 1
FilterSramSzkB: 1
OfmapSramSzkB: 1
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth : 10
Dataflow : ws
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(tmp_path: Path, topo: Path, *extra: str, cfg: Path | None = None) -> int:
    cfg = cfg or write(tmp_path, "scale.cfg", CFG)
    return scalesim_cli.main(["-c", str(cfg), "-t", str(topo), "-p", str(tmp_path / "out"), *extra])


def test_trailing_fields_are_ignored_like_scalesim(tmp_path):
    """mobilnet_paper.csv's `Conv2_dw, ..., 1,#dw` rows, a v3 sparsity ratio, and any other trailing note."""
    rows = [
        "Conv2_dw, 12, 12, 3, 3, 1, 1, 1,#dw",
        "c2, 10, 10, 1, 1, 8, 16, 1, 2:4,",
        "c3, 9, 9, 3, 3, 2, 4, 2, note, 7, x,",
    ]
    layers = read_topology(write(tmp_path, "t.csv", CONV_HEADER + "\n".join(rows) + "\n"))
    assert [(x.name, x.ifmap_h, x.channels, x.num_filters, x.stride_h) for x in layers] == [
        ("Conv2_dw", 12, 1, 1, 1),
        ("c2", 10, 8, 16, 1),
        ("c3", 9, 2, 4, 2),
    ]
    gemm = read_topology(write(tmp_path, "g.csv", "Layer, M, N, K,\ng1, 4, 5, 6, 2:4,\ng2, 7, 8, 9,#fc\n"), gemm=True)
    assert [(x.name, x.m, x.n, x.k) for x in gemm] == [("g1", 4, 5, 6), ("g2", 7, 8, 9)]


def test_trailing_field_row_runs_and_matches_the_plain_row(tmp_path):
    noted = write(tmp_path, "noted.csv", CONV_HEADER + "Conv2_dw, 12, 12, 3, 3, 1, 1, 1,#dw\n")
    plain = write(tmp_path, "plain.csv", CONV_HEADER + "Conv2_dw, 12, 12, 3, 3, 1, 1, 1,\n")
    assert run(tmp_path, noted) == 0
    first = (tmp_path / "out" / "dropin" / "COMPUTE_REPORT.csv").read_text()
    assert run(tmp_path, plain) == 0
    assert (tmp_path / "out" / "dropin" / "COMPUTE_REPORT.csv").read_text() == first
    assert first.count("\n") == 2


@pytest.mark.parametrize("text", ["", CONV_HEADER, CONV_HEADER + "\n  \n"])
def test_empty_topology_writes_empty_reports_like_scalesim(tmp_path, capsys, text):
    assert run(tmp_path, write(tmp_path, "t.csv", text)) == 0
    folder = tmp_path / "out" / "dropin"
    assert (folder / "COMPUTE_REPORT.csv").read_text() == COMPUTE_HEADER
    assert (folder / "BANDWIDTH_REPORT.csv").read_text() == BANDWIDTH_HEADER
    assert (folder / "DETAILED_ACCESS_REPORT.csv").read_text() == DETAIL_HEADER
    err = capsys.readouterr().err
    assert err.startswith("accelkit scalesim: warning: ") and "no layers" in err


def test_empty_topology_is_still_an_error_in_accelkit_sim(tmp_path, capsys):
    from accelkit.sim.cli import main as sim_main

    topo = write(tmp_path, "t.csv", CONV_HEADER)
    assert sim_main(["--topology", str(topo)]) == 2
    assert f"{topo}:1: no layers" in capsys.readouterr().err


def test_zero_channels_is_refused_with_file_and_line(tmp_path, capsys):
    topo = write(tmp_path, "t.csv", CONV_HEADER + "ok, 10, 10, 3, 3, 2, 4, 1,\nc0, 10, 10, 3, 3, 0, 4, 1,\n")
    assert run(tmp_path, topo) == 2
    assert capsys.readouterr().err.startswith(f"accelkit scalesim: error: {topo}:3: layer 'c0', column 'Channels'")


def test_conv_topology_under_gemm_says_drop_the_flag(tmp_path, capsys):
    topo = write(tmp_path, "t.csv", CONV_HEADER + "c1, 12, 12, 3, 4, 10, 1, 1,\n")
    assert run(tmp_path, topo, "-i", "gemm") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"accelkit scalesim: error: {topo}:2: layer 'c1'")
    assert "this looks like a conv topology; drop -i gemm" in err and "Sparsity" not in err


def test_gemm_topology_without_the_flag_says_pass_it(tmp_path, capsys):
    topo = write(tmp_path, "t.csv", "Layer, M, N, K,\ng1, 64, 32, 16,\n")
    assert run(tmp_path, topo) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"accelkit scalesim: error: {topo}:2: layer 'g1'")
    assert "this looks like a GEMM topology; pass -i gemm" in err


def test_outdir_naming_a_file_says_it_is_not_a_folder(tmp_path, capsys):
    topo = write(tmp_path, "t.csv", CONV_HEADER + "c1, 10, 10, 3, 3, 2, 4, 1,\n")
    blocker = write(tmp_path, "out", "a file")
    assert run(tmp_path, topo) == 2
    err = capsys.readouterr().err
    assert err == f"accelkit scalesim: error: {blocker}: -p must name a folder (existing or new), and this is a file\n"
    assert "File exists" not in err and blocker.read_text() == "a file"


def test_config_with_a_byte_order_mark_is_accepted(tmp_path):
    plain = read_config(write(tmp_path, "plain.cfg", CFG))
    bom = tmp_path / "bom.cfg"
    bom.write_bytes(b"\xef\xbb\xbf" + CFG.encode())
    assert read_config(bom).hardware == plain.hardware
    topo = write(tmp_path, "t.csv", "\ufeff" + CONV_HEADER + "c1, 10, 10, 3, 3, 2, 4, 1,\n")
    assert run(tmp_path, topo, cfg=bom) == 0


def test_upper_case_dataflow_names_the_valid_spellings(tmp_path):
    cfg = write(tmp_path, "scale.cfg", CFG.replace("Dataflow : ws", "Dataflow : WS"))
    line = CFG.splitlines().index("Dataflow : ws") + 1
    expected = f"{cfg}:{line}: [architecture_presets] Dataflow: expected os, ws or is (lower case), got 'WS'"
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
        read_config(cfg)
