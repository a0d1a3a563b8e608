"""SCALE-Sim config and topology reading: accepted dialects, and errors that name the file, line and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from accelkit.sim import scalesim_cli
from accelkit.sim.scalesim.config import ConfigError, read_config
from accelkit.sim.scalesim.topology import read_topology

GOLDEN = Path(__file__).resolve().parent / "golden"
V3_CFG = (GOLDEN / "user_os_8x8_gemm" / "scale.cfg").read_text()

V2_CFG = """[general]
run_name = v2run

[architecture_presets]
arrayheight: 16
ARRAYWIDTH: 8
IfmapSramSzkB: 4
FilterSramSzkB: 2
OfmapSramSzkB: 1
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth : 7, 3
Dataflow : is
MemoryBanks: 1

[run_presets]
InterfaceBandwidth: USER
"""


def write(tmp_path: Path, text: str, name: str = "scale.cfg") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_v2_config_without_v3_sections(tmp_path):
    cfg = read_config(write(tmp_path, V2_CFG))
    hw = cfg.hardware
    assert (hw.rows, hw.cols, hw.dataflow, hw.run_name) == (16, 8, "is", "v2run")
    assert (hw.ifmap_sram_bytes, hw.filter_sram_bytes, hw.ofmap_sram_bytes) == (4096, 2048, 1024)
    # v2 has no [layout]: every operand uses the first Bandwidth value.
    assert (hw.dram_bw_words_per_cycle, hw.read_bw("ifmap"), hw.read_bw("filter")) == (7, 7, 7)


def test_v3_config_reads_layout_bandwidths(tmp_path):
    text = V3_CFG.replace("IfmapSRAMBankBandwidth: 10", "IfmapSRAMBankBandwidth: 6")
    hw = read_config(write(tmp_path, text)).hardware
    assert (hw.read_bw("ifmap"), hw.read_bw("filter"), hw.dram_bw_words_per_cycle) == (6, 10, 10)


@pytest.mark.parametrize(
    ("old", "new", "key", "needle"),
    [
        ("ArrayHeight: 8", "ArrayHeight: eight", "ArrayHeight", "ArrayHeight"),
        ("ArrayWidth: 8", "ArrayWidth: 0", "ArrayWidth", "ArrayWidth"),
        ("Dataflow : os", "Dataflow : rs", "Dataflow", "Dataflow"),
        ("InterfaceBandwidth: USER", "InterfaceBandwidth: FAST", "InterfaceBandwidth", "InterfaceBandwidth"),
        ("Bandwidth : 10", "Bandwidth : ten", "Bandwidth", "Bandwidth :"),
        ("SparsitySupport : false", "SparsitySupport : true", "SparsitySupport", "SparsitySupport"),
        ("IfmapCustomLayout: False", "IfmapCustomLayout: True", "IfmapCustomLayout", "IfmapCustomLayout"),
    ],
)
def test_bad_config_value_names_file_line_key(tmp_path, old, new, key, needle):
    text = V3_CFG.replace(old, new)
    assert text != V3_CFG
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        read_config(path)
    assert str(err.value).startswith(f"{path}:{line_of(text, needle)}:")
    assert key in str(err.value)


def test_missing_key_points_at_its_section(tmp_path):
    text = re.sub(r"ArrayWidth:.*\n", "", V3_CFG)
    path = write(tmp_path, text)
    with pytest.raises(
        ConfigError,
        match=rf"^{re.escape(str(path))}:{line_of(text, '[architecture_presets]')}: "
        r"\[architecture_presets\] ArrayWidth: missing key",
    ):
        read_config(path)


def test_unparsable_config(tmp_path):
    path = write(tmp_path, "[general]\nrun_name = x\nno separator here\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}:3:"):
        read_config(path)


def test_topology_dialects(tmp_path):
    topo = write(
        tmp_path,
        "header\nConv1, 10, 12, 3, 3, 2, 4, 1,\n\nconv2,9,9,1,1,3,2,2\nDPdw, 8, 8, 3, 3, 3, 1, 1, 2:4,\n",
        "t.csv",
    )
    layers = read_topology(topo)
    assert [x.name for x in layers] == ["Conv1", "conv2", "DPdwChannel_0", "DPdwChannel_1", "DPdwChannel_2"]
    assert (layers[1].ifmap_h, layers[1].stride_w, layers[1].channels) == (9, 2, 3)
    assert all(x.channels == 1 for x in layers[2:])
    gemm = read_topology(write(tmp_path, "Layer, M, N, K,\nQKT, 64, 32, 16,\n", "g.csv"), gemm=True)
    assert (gemm[0].m, gemm[0].n, gemm[0].k) == (64, 32, 16)


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("c1, 10, x, 3, 3, 2, 4, 1,", "IFMAP Width"),
        ("c1, 10, 10, 11, 3, 2, 4, 1,", "Filter Height"),
        ("c1, 10, 10, 3, 3, 2, 0, 1,", "Num Filter"),
        ("c1, 10, 10, 3, 3, 2, 4, 1, 2/4,", "Sparsity"),
    ],
)
def test_bad_topology_row_names_file_line_column(tmp_path, row, column):
    topo = write(tmp_path, f"header\nok, 10, 10, 3, 3, 2, 4, 1,\n{row}\n", "t.csv")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(topo))}:3: layer 'c1', column '{column}'"):
        read_topology(topo)


def test_short_gemm_row(tmp_path):
    topo = write(tmp_path, "Layer, M, N, K,\ng, 4, 5,\n", "g.csv")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(topo))}:2: layer 'g': expected M, N, K"):
        read_topology(topo, gemm=True)


def test_cli_bad_config_exits_2_and_writes_nothing(tmp_path, capsys):
    cfg = write(tmp_path, V3_CFG.replace("Dataflow : os", "Dataflow : xx"))
    topo = GOLDEN / "user_os_8x8_gemm" / "topology.csv"
    out = tmp_path / "out"
    assert scalesim_cli.main(["-c", str(cfg), "-t", str(topo), "-p", str(out), "-i", "gemm"]) == 2
    assert f"{cfg}:{line_of(V3_CFG, 'Dataflow')}: [architecture_presets] Dataflow" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_failed_run_leaves_no_partial_report(tmp_path, monkeypatch):
    """A layer failing mid-run must leave neither a half-written report folder nor the temporary folder."""
    from accelkit.sim import compat_engine

    real = compat_engine.simulate_compat
    calls = []

    def second_layer_fails(layer, hw):
        calls.append(layer.name)
        if len(calls) == 2:
            raise ValueError("injected failure")
        return real(layer, hw)

    monkeypatch.setattr(compat_engine, "simulate_compat", second_layer_fails)
    folder = GOLDEN / "user_os_8x8_gemm"
    out = tmp_path / "out"
    argv = ["-c", str(folder / "scale.cfg"), "-t", str(folder / "topology.csv"), "-p", str(out), "-i", "gemm"]
    assert scalesim_cli.main(argv) == 2
    assert calls == ["g1", "g2"]
    assert list(out.iterdir()) == []


def test_rerun_replaces_reports(tmp_path):
    folder = GOLDEN / "calc_os_8x8_gemm"
    argv = ["-c", str(folder / "scale.cfg"), "-t", str(folder / "topology.csv"), "-p", str(tmp_path), "-i", "gemm"]
    report = tmp_path / "calc_os_8x8_gemm" / "COMPUTE_REPORT.csv"
    assert scalesim_cli.main(argv) == 0
    report.write_text("stale")
    assert scalesim_cli.main(argv) == 0
    assert report.read_text() == (folder / "COMPUTE_REPORT.csv").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calc_os_8x8_gemm"]
