"""`simulate` and `Report`: workload and hardware resolution, validation naming the argument, exports."""

import csv
import dataclasses
import json

import pytest

from accelkit.sim.api import simulate
from accelkit.sim.engine import simulate_layer
from accelkit.sim.functional import ScheduleError
from accelkit.sim.hardware import Hardware, eyeriss_like, tpu_v1_like
from accelkit.sim.networks import get_network
from accelkit.sim.workloads import Conv, Gemm

SMALL = Hardware(rows=8, cols=8, dataflow="ws")
LAYERS = [Gemm("fc", 16, 24, 40), Conv("conv", 9, 9, 3, 3, 4, 8, 2, 2, 1, 1, 2, 2), Gemm("fc2", 5, 7, 3)]


def test_presets_by_name():
    assert simulate(LAYERS[0], "tpu_v1").hardware == tpu_v1_like()
    assert simulate(LAYERS[0], "eyeriss_like").hardware == eyeriss_like()


def test_single_layer_list_and_network_name():
    one = simulate(LAYERS[0], SMALL)
    many = simulate(LAYERS, SMALL)
    assert [r.name for r in many.layers] == ["fc", "conv", "fc2"]
    assert one.layers[0] == many.layers[0]
    assert many.layers[1].stats == simulate_layer(LAYERS[1], SMALL)
    network = simulate("bert_base", SMALL, seq_len=32, batch=2)
    assert len(network) == len(get_network("bert_base", seq_len=32, batch=2))


def test_identical_shapes_keep_their_own_names():
    report = simulate("bert_base", SMALL, seq_len=16)
    heads = [r for r in report.layers if r.name.endswith(".scores")]
    assert len(heads) == 144 and len({r.name for r in heads}) == 144
    assert all(r.stats.name == r.name for r in report.layers)
    assert len({dataclasses.replace(r.stats, name="") for r in heads}) == 1


@pytest.mark.parametrize("level", [True, "fold", "cycle"])
def test_functional_mode_verifies_every_layer(level):
    report = simulate(LAYERS, SMALL, functional=level)
    # fc: ceil(40 / 8) x ceil(24 / 8) WS folds; conv: 2 groups x ceil(18 / 8) x ceil(4 / 8); fc2: 1 x 1.
    assert [r.verified_folds for r in report.layers] == [15, 6, 1]
    assert simulate(LAYERS, SMALL).layers[0].verified_folds is None


def test_functional_mode_raises_on_a_broken_schedule(monkeypatch):
    from accelkit.sim import functional

    def skip_first(*args, **kwargs):
        return list(functional_schedule(*args, **kwargs))[1:]

    functional_schedule = functional.fold_schedule
    monkeypatch.setattr(functional, "fold_schedule", skip_first)
    with pytest.raises(ScheduleError):
        simulate(LAYERS, SMALL, functional=True)


def test_progress_reports_every_layer():
    calls = []
    simulate(LAYERS, SMALL, progress=lambda done, total, name: calls.append((done, total, name)))
    assert calls == [(1, 3, "fc"), (2, 3, "conv"), (3, 3, "fc2")]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("resnet51", SMALL), {}, ValueError, "name: unknown network"),
        ((LAYERS, "tpu_v9"), {}, ValueError, "hardware: unknown preset"),
        ((LAYERS, 256), {}, TypeError, "hardware must be"),
        ((42, SMALL), {}, TypeError, "workload must be"),
        (([LAYERS[0], "conv"], SMALL), {}, TypeError, r"workload\[1\]"),
        (([], SMALL), {}, ValueError, "workload is an empty list"),
        ((LAYERS, SMALL), {"mode": "exact"}, ValueError, "mode must be"),
        ((LAYERS, SMALL), {"functional": "exact"}, ValueError, "functional must be a bool or one of"),
        ((LAYERS, SMALL), {"accumulate_on_chip": 1}, TypeError, "accumulate_on_chip must be a bool"),
        ((LAYERS, SMALL), {"progress": "bar"}, TypeError, "progress must be"),
        ((LAYERS, SMALL), {"batch": 2}, ValueError, "batch and seq_len apply to a network name"),
    ],
)
def test_validation_names_the_argument(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        simulate(*args, **kwargs)


def test_exports_round_trip(tmp_path):
    report = simulate(LAYERS, SMALL)
    rows = list(csv.DictReader(report.to_csv(tmp_path / "r.csv").open()))
    assert [int(row["total_cycles"]) for row in rows] == [r.stats.total_cycles for r in report.layers]
    assert [row["kind"] for row in rows] == ["gemm", "conv", "gemm"]
    data = json.loads(report.to_json(tmp_path / "r.json").read_text())
    assert data == json.loads(json.dumps(report.to_dict()))
    assert data["totals"]["macs"] == sum(layer.macs for layer in LAYERS)
    assert data["layers"][1]["groups"] == 2
    frame = report.to_pandas()
    assert list(frame.index) == ["fc", "conv", "fc2"]
    assert frame["total_energy_pj"].sum() == pytest.approx(report.totals.energy_pj)


def test_totals_latency_and_traffic():
    report = simulate(LAYERS, SMALL)
    t = report.totals
    assert t.latency_ms == pytest.approx(t.total_cycles / (SMALL.clock_mhz * 1e3))
    assert t.dram_bytes == t.dram_words * SMALL.word_bytes
    assert t.dram_words == sum(
        s.ifmap_dram_reads + s.filter_dram_reads + s.ofmap_dram_writes + s.ofmap_dram_reads
        for s in (r.stats for r in report.layers)
    )


def test_simulate_layer_takes_a_preset_name_like_simulate():
    layer = LAYERS[1]
    assert simulate_layer(layer, "tpu_v1") == simulate_layer(layer, tpu_v1_like())
    assert simulate_layer(layer, "Eyeriss-like") == simulate(layer, "eyeriss").layers[0].stats
    with pytest.raises(ValueError, match="hardware: unknown preset 'tpu_v9'"):
        simulate_layer(layer, "tpu_v9")
    with pytest.raises(TypeError, match="hw must be a Hardware or a preset name"):
        simulate_layer(layer, 256)


def test_report_prints_as_a_table():
    report = simulate(LAYERS, SMALL)
    lines = str(report).splitlines()
    assert lines[0].split("  ")[:2] == ["layer", "cycles"] and lines[0].endswith("DRAM KB")
    body = lines[2 : 2 + len(LAYERS)]
    assert [line.split()[0] for line in body] == [layer.name for layer in LAYERS]
    assert [int(line.split()[1].replace(",", "")) for line in body] == [r.stats.total_cycles for r in report.layers]
    assert len({len(line) for line in lines[:-1]}) == 1  # columns aligned: every table line has the same width
    assert lines[-2].split()[:2] == ["total", f"{report.totals.total_cycles:,}"]
    assert lines[-1] == report.summary()


def test_report_renders_with_rich():
    from rich.console import Console

    console = Console(record=True, width=150)
    report = simulate(LAYERS, SMALL)
    console.print(report)
    text = console.export_text()
    assert all(layer.name in text for layer in LAYERS)
    assert f"{report.totals.total_cycles:,}" in text and report.summary() in text


def test_duplicate_layer_names_warn():
    from accelkit.sim.api import DuplicateLayerNameWarning

    layers = [Gemm("fc", 4, 4, 4), Gemm("fc", 8, 8, 8), Gemm("x", 2, 2, 2)]
    with pytest.warns(DuplicateLayerNameWarning, match=r"'fc' x2"):
        report = simulate(layers, SMALL)
    assert [r.stats.macs for r in report.layers] == [64, 512, 8]


@pytest.mark.parametrize("network", ["resnet50", "mobilenet_v2", "bert_base", "gpt2", "vit_b16"])
def test_built_in_networks_do_not_warn(network, recwarn):
    simulate(network, SMALL)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_to_pandas_without_pandas_names_the_extra(monkeypatch):
    import sys

    from accelkit._optional import MissingDependency

    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now raises ImportError
    with pytest.raises(MissingDependency, match=r"Report.to_pandas\(\) needs pandas.*pip install"):
        simulate(LAYERS, SMALL).to_pandas()


def test_nothing_in_sim_imports_torch_or_triton():
    import ast
    from pathlib import Path

    import accelkit.sim

    heavy = {"torch", "triton"}
    for path in Path(accelkit.sim.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not {name.split(".")[0] for name in names} & heavy, f"{path} imports {names}"


def test_exports_leave_no_partial_file(tmp_path, monkeypatch):
    report = simulate(LAYERS, SMALL)
    target = tmp_path / "r.json"
    target.write_text("old")

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", broken)
    for export in (report.to_json, report.to_csv):
        with pytest.raises(OSError, match="No space left"):
            export(target)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
