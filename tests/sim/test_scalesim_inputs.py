"""SCALE-Sim config and topology reading: accepted dialects, and errors that name the file, line and key."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import sim_hardware

from accelkit.sim.hardware import Hardware
from accelkit.sim.scalesim import cli as scalesim_cli
from accelkit.sim.scalesim.config import ConfigError, config_text, read_config
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


# Config files configparser rejects, or that used to escape as another exception: (text, line the error names).
_ARRAY_HEIGHT_LINE = line_of(V3_CFG, "ArrayHeight")
BROKEN_CONFIGS = {
    "no section header": ("run_name = x\n" + V3_CFG, 1),
    "duplicate section": (V3_CFG + "\n[general]\nrun_name = again\n", V3_CFG.count("\n") + 2),
    "duplicate key": (V3_CFG.replace("ArrayHeight: 8", "ArrayHeight: 8\narrayheight: 4"), _ARRAY_HEIGHT_LINE + 1),
    "key without value": (V3_CFG.replace("ArrayHeight: 8", "ArrayHeight"), _ARRAY_HEIGHT_LINE),
    "percent sign": (V3_CFG.replace("ArrayHeight: 8", "ArrayHeight: 8%"), _ARRAY_HEIGHT_LINE),
    "interpolation": (V3_CFG.replace("ArrayHeight: 8", "ArrayHeight: %(rows)s"), _ARRAY_HEIGHT_LINE),
}


@pytest.mark.parametrize("case", list(BROKEN_CONFIGS))
def test_broken_config_is_a_config_error_with_file_and_line(tmp_path, case):
    text, line = BROKEN_CONFIGS[case]
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}:{line}: "):
        read_config(path)


def test_unreadable_config_files(tmp_path):
    missing = tmp_path / "missing.cfg"
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(missing))}: cannot read config: No such file"):
        read_config(missing)
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(tmp_path))}: cannot read config"):
        read_config(tmp_path)
    binary = tmp_path / "binary.cfg"
    binary.write_bytes(b"[general]\nrun_name = x\nArrayHeight: \xff\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(binary))}:3: cannot read config: byte 0xff"):
        read_config(binary)


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
        ("c1, 10, 10, 3, 3, 0, 4, 1,", "Channels"),
    ],
)
def test_bad_topology_row_names_file_line_column(tmp_path, row, column):
    topo = write(tmp_path, f"header\nok, 10, 10, 3, 3, 2, 4, 1,\n{row}\n", "t.csv")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(topo))}:3: layer 'c1', column '{column}'"):
        read_topology(topo)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("header\n\n\nc1, 10, 10, 3, 3, 2, 4\n", 4),
        ("header\nc1, 10, 10, 3, 3, 2, 4, 1,\n\nc2, 10, ten, 3, 3, 2, 4, 1,\n", 4),
        ("header\n\n  \n", 1),
        ("header\nc1, 10, 10, 3, 3, 2, 4, 1.5,\n", 2),
    ],
)
def test_bad_topology_names_file_and_line(tmp_path, text, line):
    topo = write(tmp_path, text, "t.csv")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(topo))}:{line}: "):
        read_topology(topo)


def test_unreadable_topology_files(tmp_path):
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(tmp_path / 'no.csv'))}: cannot read topology"):
        read_topology(tmp_path / "no.csv")
    binary = tmp_path / "t.csv"
    binary.write_bytes(b"header\nc1, 10, 10, 3, 3, 2, 4, 1,\nc\xe9, 1, 1, 1, 1, 1, 1, 1,\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(binary))}:3: cannot read topology: byte 0xe9"):
        read_topology(binary)


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


def _cli_fault(tmp_path: Path, fault: str) -> tuple[list[str], str]:
    """Arguments of an `accelkit scalesim` run that must fail, and the start of the message it must print."""
    cfg, topo = GOLDEN / "user_os_8x8_gemm" / "scale.cfg", GOLDEN / "user_os_8x8_gemm" / "topology.csv"
    if fault in BROKEN_CONFIGS:
        text, line = BROKEN_CONFIGS[fault]
        cfg = write(tmp_path, text)
        return ["-c", str(cfg), "-t", str(topo)], f"{cfg}:{line}: "
    if fault == "missing config":
        return ["-c", str(tmp_path / "no.cfg"), "-t", str(topo)], f"{tmp_path / 'no.cfg'}: cannot read config"
    if fault == "missing topology":
        return ["-c", str(cfg), "-t", str(tmp_path / "no.csv")], f"{tmp_path / 'no.csv'}: cannot read topology"
    if fault == "bad topology":
        bad = write(tmp_path, "Layer, M, N, K,\ng1, 4, 5, 6,\n\ng2, 4, x, 6,\n", "t.csv")
        return ["-c", str(cfg), "-t", str(bad)], f"{bad}:4: layer 'g2', column 'N'"
    one = write(tmp_path, V3_CFG.replace("ArrayHeight: 8", "ArrayHeight: 1").replace("ArrayWidth: 8", "ArrayWidth: 1"))
    gemm = write(tmp_path, "Layer, M, N, K,\none, 1, 1, 1,\n", "t.csv")
    return ["-c", str(one), "-t", str(gemm)], "compat mode: layer 'one' takes 0 cycles in SCALE-Sim 3.0.0"


@pytest.mark.parametrize(
    "fault", [*BROKEN_CONFIGS, "missing config", "missing topology", "bad topology", "zero-cycle layer"]
)
def test_cli_input_faults_print_one_line_and_exit_2(tmp_path, capsys, fault):
    args, message = _cli_fault(tmp_path, fault)
    out = tmp_path / "out"
    assert scalesim_cli.main([*args, "-p", str(out), "-i", "gemm"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"accelkit scalesim: error: {message}")
    assert captured.err.count("\n") == 1 and captured.out == ""
    assert not out.exists() or not any(out.iterdir())


def test_cli_outdir_that_is_a_file_exits_2(tmp_path, capsys):
    folder = GOLDEN / "calc_os_8x8_gemm"
    blocker = write(tmp_path, "not a folder", "out")
    argv = ["-c", str(folder / "scale.cfg"), "-t", str(folder / "topology.csv"), "-p", str(blocker), "-i", "gemm"]
    assert scalesim_cli.main(argv) == 2
    assert capsys.readouterr().err == (
        f"accelkit scalesim: error: {blocker}: -p must name a folder (existing or new), and this is a file\n"
    )
    assert blocker.read_text() == "not a folder"


def test_failed_run_leaves_no_partial_report(tmp_path, monkeypatch):
    """A layer failing mid-run must leave neither a half-written report folder nor the temporary folder."""
    from accelkit.sim.scalesim import engine as compat_engine

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


@given(hw=sim_hardware(scalesim_expressible=True), name=st.sampled_from(["run", "my run_2"]))
def test_config_text_reads_back_as_the_same_hardware(tmp_path_factory, hw, name):
    hw = dataclasses.replace(hw, run_name=name, ifmap_offset=7, filter_offset=0, ofmap_offset=123_456)
    path = tmp_path_factory.mktemp("cfg") / "scale.cfg"
    path.write_text(config_text(hw))
    back = read_config(path).hardware
    array = ("rows", "cols", "dataflow", "run_name", "dram_bw_words_per_cycle", "calc_mode")
    sizes = ("ifmap_sram_bytes", "filter_sram_bytes", "ofmap_sram_bytes")
    offsets = ("ifmap_offset", "filter_offset", "ofmap_offset")
    for field in array + sizes + offsets:
        assert getattr(back, field) == getattr(hw, field), field
    assert (back.read_bw("ifmap"), back.read_bw("filter")) == (hw.read_bw("ifmap"), hw.read_bw("filter"))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (dict(word_bytes=2), "word_bytes"),
        (dict(filter_sram_bytes=1000), "filter_sram_bytes"),
        (dict(dram_bw_words_per_cycle=2.5), "dram_bw_words_per_cycle"),
        (dict(dram_bw_words_per_cycle=4, ifmap_dram_bw_words_per_cycle=0.5), "ifmap_dram_bw_words_per_cycle"),
        (dict(run_name="two\nlines"), "run_name"),
    ],
)
def test_config_text_refuses_what_scalesim_cannot_express(change, field):
    hw = dataclasses.replace(Hardware(4, 4, "os", 1024, 1024, 1024), **change)
    with pytest.raises(ValueError, match=f"Hardware.{field}="):
        config_text(hw)
