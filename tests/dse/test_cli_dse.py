"""`accelkit dse SPEC.yaml`: writes the table, plots and report into the current directory by default."""

import sys

import pandas as pd
from specs import SMALL

from accelkit.cli import main


def test_dse_writes_report_into_cwd(tmp_path, monkeypatch, capsys):
    spec = tmp_path / "small.yaml"
    spec.write_text(SMALL)
    monkeypatch.chdir(tmp_path)
    assert main(["dse", str(spec), "--executor", "serial", "--no-cache", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "180 designs" in out and "report: small_report.html" in out
    table = pd.read_parquet(tmp_path / "small_results.parquet")
    assert len(table) == 180 and table["on_front"].sum() >= 2
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "small_results.csv"), table, check_dtype=False)
    html = (tmp_path / "small_report.html").read_text()
    assert html.count("data:image/png;base64,") == 4  # three objective pairs and the layer breakdown
    assert "Pareto front" in html
    for name in ("pareto_latency_energy", "pareto_latency_area", "pareto_energy_area", "layers"):
        assert (tmp_path / f"small_{name}.png").read_bytes().startswith(b"\x89PNG")


def test_dse_spec_error_is_one_line(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text(SMALL.replace("rows:", "rowz:"))
    assert main(["dse", str(spec), "--no-cache"]) == 2
    assert capsys.readouterr().err.strip() == f"accelkit dse: {spec}:3: parameters.rowz: unknown parameter; " + (
        "expected one of rows, cols, dataflow, ifmap_sram_kib, filter_sram_kib, ofmap_sram_kib, "
        "dram_bw_words_per_cycle, clock_mhz, word_bytes"
    )


def test_dse_without_extra_names_the_install(tmp_path, monkeypatch, capsys):
    spec = tmp_path / "small.yaml"
    spec.write_text(SMALL)
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml now raises ImportError
    assert main(["dse", str(spec), "--no-cache"]) == 2
    assert capsys.readouterr().err.strip() == (
        "accelkit dse: accelkit dse needs yaml, which is not installed: pip install 'accelkit[dse]'"
    )


def test_demo_sweep_prints_report_path(tmp_path):
    from accelkit import demo_dse

    lines = []
    path = demo_dse.run(lines.append, out_dir=str(tmp_path))
    assert lines[0].startswith("36 designs x 54 ResNet-50 layers")
    assert lines[-1] == f"report: {path}" and path == str(tmp_path / "demo_resnet50_report.html")
