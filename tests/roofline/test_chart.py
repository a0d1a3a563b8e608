"""Roofline bounds against hand-computed values, the host measurement cache, records, simulated points, the CLI."""

import json
import sys

import pytest

from accelkit.cli import main
from accelkit.roofline import devices
from accelkit.roofline.devices import DEVICES, Device
from accelkit.roofline.points import Point, judge, record_points, simulated_points


def test_h100_bounds_by_hand():
    h100 = DEVICES["h100"]
    # Datasheet: 989.4 TFLOP/s dense BF16, 3.35 TB/s, so the ridge is 989.4e12 / 3.35e12 = 295.34 FLOP/byte.
    assert h100.ridge() == pytest.approx(295.343, rel=1e-5)
    assert h100.bound(10.0) == pytest.approx(3.35e13)
    assert h100.bound(1000.0) == pytest.approx(989.4e12)
    assert h100.bound(1000.0, "fp32") == pytest.approx(67e12)
    # binary_matmul m=64, n=k=4096, fp32: 2 x 64 x 4096^2 = 2,147,483,648 ops over (64 x 4096 x 2 + 4096^2) x 4 =
    # 69,206,016 bytes: 31.03 ops/byte, memory-bound at 31.03 x 3.35e12 = 1.0395e14.
    point = judge(Point("g", "measured", 2_147_483_648, "op", 69_206_016, seconds=0.1), h100)
    assert point.bound_kind == "memory"
    assert point.bound_ops_per_s == pytest.approx(1.03951e14, rel=1e-5)
    assert point.fraction == pytest.approx(21.47483648e9 / 1.03951e14, rel=1e-5)


def test_cli_writes_chart_and_table(tmp_path, capsys):
    attention = ["--op", "flash_attention", "--shape", "B=1,T=4096,H=8,D=128,causal=true"]
    argv = ["roofline", "--device", "h100", "--op", "binary_matmul", "--shape", "M=64,N=4096,K=4096", *attention]
    argv += ["--out", str(tmp_path)]
    assert main(argv) == 0
    rows = json.loads((tmp_path / "roofline.json").read_text())
    assert [r["bound"] for r in rows] == ["memory only (no binary op roof)", "compute"]
    assert rows[0]["bound_ops_per_s"] == pytest.approx(1.03951e14, rel=1e-5)
    assert rows[1]["bound_ops_per_s"] == pytest.approx(989.4e12)
    assert all(r["fraction"] == pytest.approx(1.0) for r in rows)  # analytic points sit on the roof
    assert (tmp_path / "roofline.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "roofline.csv").read_text().splitlines()[0].startswith("name,kind,work,unit,bytes")
    assert "H100 SXM: peak 989.4 T ops/s" in capsys.readouterr().out


def test_host_measured_once_and_cached(tmp_path, monkeypatch):
    calls = []

    def fake(**_):
        calls.append(1)
        return 1e11, 2e10

    monkeypatch.setattr(devices, "measure_host", fake)
    path = tmp_path / "host.json"
    first = devices.host_device(cache=path)
    second = devices.host_device(cache=path)
    assert len(calls) == 1 and first == second
    assert first.peak() == 1e11 and first.bandwidth_bytes_per_s == 2e10 and first.ridge() == 5.0
    devices.host_device(cache=path, refresh=True)
    assert len(calls) == 2


def test_measure_host_small():
    flops, bandwidth = devices.measure_host(matmul_n=64, reduce_mib=1, repeats=1)
    assert flops > 1e6 and bandwidth > 1e6


def test_record_points_keep_complete_records(tmp_path):
    path = tmp_path / "records.jsonl"
    lines = [
        {"name": "a", "flops": 1e9, "bytes": 1e6, "seconds": 0.01, "device": "host"},
        {"name": "b", "ops": 4e9, "bytes": 2e6, "seconds": 0.02},
        {"name": "c", "flops": None, "bytes": 1e6, "seconds": 0.01},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    points = record_points(path)
    assert [(p.name, p.intensity, p.achieved_ops_per_s) for p in points] == [("a", 1e3, 1e11), ("b", 2e3, 2e11)]
    # A record with flops: null and ops set counts its ops; a device filter keeps the matching records only.
    path.write_text(path.read_text() + json.dumps({"name": "d", "flops": None, "ops": 8.0, "bytes": 2.0,
                                                   "seconds": 1.0, "device": "simulated: tpu"}) + "\n")  # fmt: skip
    assert [p.name for p in record_points(path)] == ["a", "b", "d"]
    assert [p.name for p in record_points(path, "host")] == ["a"]
    assert [p.name for p in record_points(path, "simulated: tpu")] == ["d"]


def test_simulated_layers_never_beat_their_roofs():
    from accelkit.roofline.devices import accelerator_device
    from accelkit.sim.hardware import tpu_v1_like

    device = accelerator_device(tpu_v1_like())
    # 256 x 256 PEs x 2 ops x 700 MHz; 34 GB/s (Jouppi et al. 2017, as the preset).
    assert device.peak() == pytest.approx(2 * 65536 * 700e6) and device.bandwidth_bytes_per_s == pytest.approx(34e9)
    points = [judge(p, device) for p in simulated_points("resnet50", "tpu_v1")]
    assert len(points) == 54
    assert all(0 < p.fraction <= 1.0 for p in points), max(p.fraction for p in points)


def test_missing_matplotlib_names_the_extra(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["roofline", "--device", "h100", "--op", "binarize", "--shape", "n=10", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "accelkit roofline: accelkit roofline needs matplotlib, which is not installed: pip install 'accelkit[dse]'"
    )


def test_unknown_device():
    with pytest.raises(ValueError, match="device: unknown 'b200'"):
        devices.resolve_device("b200")
    assert isinstance(devices.resolve_device("eyeriss"), Device)


def test_binary_and_elementwise_points_get_only_the_memory_roof():
    """A binary-op GEMM at high intensity must not be judged against a FLOP roof (another unit): its bound is the
    memory roof alone, intensity x bandwidth, and the table says so."""
    device = Device("d", (("fp32", 1e12),), 1e11, "hand-made")
    binary = judge(Point("xnor", "measured", 4e12, "binary op", 1e9, seconds=1.0), device)
    assert binary.bound_ops_per_s == pytest.approx(4e3 * 1e11)
    assert binary.bound_kind == "memory only (no binary op roof)"
    assert binary.fraction == pytest.approx(4e12 / 4e14)
    flop = judge(Point("gemm", "measured", 4e12, "FLOP", 1e9, seconds=1.0), device)
    assert flop.bound_ops_per_s == pytest.approx(1e12) and flop.bound_kind == "compute"
    untimed = judge(Point("ew", "analytic", 1e6, "elementwise op", 8e6), device)
    assert untimed.seconds == pytest.approx(1e6 / (1e6 / 8e6 * 1e11))


def test_records_keep_the_unit_of_their_work(tmp_path):
    from accelkit.roofline.records import make_record

    result = {"name": "b", "metric": "m", "ops": 8.0, "bytes": 2.0, "seconds": 1.0, "unit": "binary op"}
    record = make_record(result, [])
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(record) + "\n")
    (point,) = record_points(path)
    assert point.unit == "binary op"
