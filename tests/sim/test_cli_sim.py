"""`accelkit sim`: runs, writes CSV/JSON, rejects bad arguments with one line and exit 2, never imports torch."""

import csv
import json
import shlex
import subprocess
import sys

import pytest

from accelkit.sim.cli import main
from accelkit.sim.networks import NETWORKS, get_network


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_network_on_preset_writes_csv_and_json(capsys, tmp_path):
    csv_path, json_path = tmp_path / "r.csv", tmp_path / "r.json"
    code, out, err = run(
        capsys, "--network", "resnet50", "--preset", "eyeriss", "--csv", str(csv_path), "--json", str(json_path)
    )
    assert (code, err) == (0, "")
    assert "conv2_1.downsample" in out and "total" in out
    rows = list(csv.DictReader(csv_path.open()))
    layers = get_network("resnet50")
    assert [row["layer"] for row in rows] == [layer.name for layer in layers]
    assert sum(int(row["macs"]) for row in rows) == sum(layer.macs for layer in layers)
    report = json.loads(json_path.read_text())
    assert report["hardware"]["rows"] == 12 and report["hardware"]["cols"] == 14
    assert report["totals"]["total_cycles"] == sum(int(row["total_cycles"]) for row in rows)
    assert len(report["layers"]) == len(layers)


def test_overrides_batch_and_sequence_length(capsys, tmp_path):
    json_path = tmp_path / "r.json"
    code, out, _ = run(
        capsys,
        "--network",
        "bert_base",
        "--seq-len",
        "64",
        "--batch",
        "2",
        "--rows",
        "16",
        "--cols",
        "8",
        "--dataflow",
        "os",
        "--bandwidth",
        "8",
        "--quiet",
        "--json",
        str(json_path),
    )
    assert code == 0
    assert out.startswith(f"{len(get_network('bert_base', batch=2, seq_len=64))} layers on 16x8 OS")
    report = json.loads(json_path.read_text())
    assert report["hardware"]["dataflow"] == "os"
    assert report["hardware"]["dram_bw_words_per_cycle"] == 8
    assert report["totals"]["macs"] == sum(layer.macs for layer in get_network("bert_base", batch=2, seq_len=64))


def test_functional_check_passes_on_every_layer(capsys, tmp_path):
    json_path = tmp_path / "r.json"
    argv = ["--network", "mobilenet_v2", "--preset", "eyeriss", "--functional", "--quiet", "--json", str(json_path)]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "53 layers" in out
    assert all(layer["verified_folds"] > 0 for layer in json.loads(json_path.read_text())["layers"])


def test_cycle_level_functional_check_on_a_small_topology(capsys, tmp_path):
    (tmp_path / "t.csv").write_text("Layer, M, N, K,\nA,9,5,7,\nB,3,20,4,\n")
    argv = ["--topology", str(tmp_path / "t.csv"), "--rows", "4", "--cols", "4", "--functional", "cycle", "--quiet"]
    code, out, err = run(capsys, *argv)
    assert (code, err) == (0, "") and out.startswith("2 layers on 4x4 WS")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--network", "resnet51"], "--network: unknown network 'resnet51'"),
        ([], "one of the arguments --network --topology is required"),
        (["--network", "resnet50", "--topology", "t.csv"], "not allowed with"),
        (["--network", "resnet50", "--batch", "0"], "--batch: expected a positive integer, got '0'"),
        (["--network", "resnet50", "--rows", "x"], "--rows: expected a positive integer, got 'x'"),
        (["--network", "resnet50", "--clock-mhz", "nan"], "--clock-mhz: expected a positive number, got 'nan'"),
        (["--network", "resnet50", "--ifmap-sram-kib", "1.5"], "--ifmap-sram-kib: expected a positive integer"),
        (["--network", "resnet-51"], "--network: unknown network 'resnet-51'; choose one of resnet50"),
        (["--network", "resnet50", "--mode", "compat", "--bandwidth", "8"], "(use --mode native)"),
        (["--network", "resnet50", "--rows", str(2**63)], "Hardware.rows must be in [1, 9223372036854775807]"),
        (["--network", "resnet50", "--seq-len", "128"], "seq_len applies to"),
        (["--network", "bert_base", "--seq-len", "4096"], "exceeds the 512 learned positions"),
        (["--network", "resnet50", "--config", "/nonexistent/scale.cfg"], "/nonexistent/scale.cfg"),
        (["--topology", "/nonexistent/topo.csv"], "/nonexistent/topo.csv"),
        (["--network", "resnet50", "--bandwidth", "-3"], "--bandwidth: expected positive words/cycle or 'calc'"),
        (["--network", "resnet50", "--mode", "fast"], "invalid choice"),
    ],
)
def test_bad_arguments_print_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("accelkit sim: error: ")
    assert message in err
    # No Python names on the command line: argparse's `invalid <function> value` nor API keywords.
    assert "_int" not in err and "_number" not in err and "mode='" not in err


def test_help_exits_0(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "--network" in out


def test_cli_imports_neither_torch_nor_triton_nor_pandas():
    script = (
        "import sys\n"
        "from accelkit.cli import main\n"
        "code = main(['sim', '--network', 'resnet50', '--preset', 'eyeriss'])\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'triton', 'pandas'})\n"
        "print('HEAVY', heavy)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("HEAVY []")


def test_accelkit_sim_command_runs_in_a_fresh_process():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "accelkit", "sim", "--network", "vit_b16", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("338 layers on 256x256 WS")
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line}
    assert "numpy" in imported
    assert not imported & {"torch", "triton", "pandas", "rich"}


def test_progress_bar_goes_to_a_terminal_stderr_only():
    import os
    import pty
    import select

    controller, terminal = pty.openpty()
    command = [sys.executable, "-m", "accelkit", "sim", "--network", "resnet50", "--quiet"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=terminal) as proc:
        os.close(terminal)
        seen = b""
        while select.select([controller], [], [], 30)[0]:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # Linux raises EIO once the child has closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        out = proc.stdout.read().decode()
    os.close(controller)
    assert proc.returncode == 0
    assert b"simulating" in seen and b"100%" in seen
    assert out.startswith("54 layers on 256x256 WS") and "simulating" not in out


SCALESIM_CFG = """[general]
run_name = golden
[architecture_presets]
ArrayHeight: 32
ArrayWidth: 32
IfmapSramSzkB: 64
FilterSramSzkB: 64
OfmapSramSzkB: 64
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth : 10
Dataflow : ws
MemoryBanks: 1
[run_presets]
InterfaceBandwidth: CALC
"""


@pytest.mark.parametrize(
    ("topology", "kind", "cycles"),
    [
        # scale-sim-v2 test/golden_trace/COMPUTE_REPORT.csv (simulators.md §1.6): AlexNet Conv1, 32x32 WS, CALC.
        (
            "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
            "Conv1,224,224,11,11,3,96,4,\n",
            "conv",
            112_283,
        ),
        # 8 x 4 folds of 2R + C + T - 2 = 64 + 32 + 256 - 2 = 350 cycles, minus SCALE-Sim's final 1 (§1.6).
        ("Layer, M, N, K,\nGEMM,256,128,256,\n", "gemm", 8 * 4 * 350 - 1),
    ],
    ids=["alexnet_conv1", "gemm_256x128x256"],
)
def test_scalesim_topology_and_config_in_compat_mode(capsys, tmp_path, topology, kind, cycles):
    (tmp_path / "scale.cfg").write_text(SCALESIM_CFG)
    (tmp_path / "topo.csv").write_text(topology)
    argv = ["--config", str(tmp_path / "scale.cfg"), "--topology", str(tmp_path / "topo.csv"), "--mode", "compat"]
    code, _, err = run(capsys, *argv, "--json", str(tmp_path / "r.json"))
    # A .cfg has no clock: the CLI says which one the latency assumes.
    assert (code, err) == (
        0,
        "accelkit sim: note: a SCALE-Sim config has no clock: latency is at 1000 MHz (set it with --clock-mhz)\n",
    )
    layer = json.loads((tmp_path / "r.json").read_text())["layers"][0]
    assert (layer["kind"], layer["total_cycles"], layer["stall_cycles"]) == (kind, cycles, 0)


def test_demo_prints_both_networks_on_both_presets():
    from accelkit.sim.api import simulate
    from accelkit.sim.demo import run as demo

    lines = []
    demo(lines.append)
    rows = [line.split() for line in lines if line.startswith(("resnet50", "bert_base"))]
    assert [(row[0], row[1]) for row in rows] == [
        ("resnet50", "tpu_v1"),
        ("resnet50", "eyeriss"),
        ("bert_base", "tpu_v1"),
        ("bert_base", "eyeriss"),
    ]
    for network, preset, _, _, cycles, *_ in rows:
        assert int(cycles.replace(",", "")) == simulate(network, preset).totals.total_cycles
    assert lines[-1].startswith("4 simulations in ")


@pytest.mark.parametrize(
    ("files", "argv", "message"),
    [
        (
            {"scale.cfg": SCALESIM_CFG.replace("ArrayHeight: 32\n", "")},
            ["--network", "gpt2"],
            "ArrayHeight: missing key",
        ),
        ({"topo.csv": "header\nL1,1,2,\n"}, [], "expected 7 values"),
        ({}, ["--network", "gpt2", "--csv", "/nonexistent/dir/r.csv"], "No such file or directory"),
    ],
    ids=["config_missing_key", "topology_short_row", "unwritable_csv"],
)
def test_bad_input_files_print_one_line_and_exit_2(capsys, tmp_path, files, argv, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        argv = [*argv, "--config" if name.endswith(".cfg") else "--topology", str(tmp_path / name)]
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and message in err


def test_non_utf8_topology_names_the_file(capsys, tmp_path):
    topology = tmp_path / "topo.csv"
    topology.write_bytes(b"Layer, M, N, K,\nL1,\xff,2,3,\n")
    code, out, err = run(capsys, "--topology", str(topology))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and f"{topology}:" in err


def test_hardware_flags_replace_the_config_file(capsys, tmp_path):
    json_path = tmp_path / "r.json"
    argv = ["--network", "ResNet-50", "--ifmap-sram-kib", "512", "--filter-sram-kib", "256", "--ofmap-sram-kib", "128"]
    code, out, err = run(capsys, *argv, "--clock-mhz", "940", "--bandwidth", "16", "--quiet", "--json", str(json_path))
    assert (code, err) == (0, "")
    assert out.startswith("54 layers on 256x256 WS") and "at 940 MHz" in out
    hw = json.loads(json_path.read_text())["hardware"]
    assert (hw["ifmap_sram_bytes"], hw["filter_sram_bytes"], hw["ofmap_sram_bytes"]) == (
        512 << 10,
        256 << 10,
        128 << 10,
    )
    assert (hw["clock_mhz"], hw["dram_bw_words_per_cycle"]) == (940, 16)


def test_config_clock_flag_silences_the_note(capsys, tmp_path):
    (tmp_path / "scale.cfg").write_text(SCALESIM_CFG)
    code, out, err = run(
        capsys, "--config", str(tmp_path / "scale.cfg"), "--network", "resnet50", "--clock-mhz", "500", "--quiet"
    )
    assert (code, err) == (0, "") and "at 500 MHz" in out


def test_duplicate_layer_names_print_a_one_line_note(capsys, tmp_path):
    (tmp_path / "t.csv").write_text("Layer, M, N, K,\nA,9,5,7,\nA,3,20,4,\n")
    code, out, err = run(capsys, "--topology", str(tmp_path / "t.csv"), "--quiet")
    assert code == 0 and out.startswith("2 layers")
    assert err.startswith("accelkit sim: note: workload has duplicate layer names ('A' x2)") and err.count("\n") == 1


@pytest.mark.parametrize("argv", [["sim", "--version"], ["scalesim", "--version"], ["--version"]])
def test_version_everywhere(capsys, argv):
    from accelkit import __version__
    from accelkit.cli import main as accelkit_main

    try:
        code = accelkit_main(argv)
    except SystemExit as exit_:  # argparse's version action exits
        code = exit_.code
    assert code == 0 and capsys.readouterr().out.strip() == f"accelkit {__version__}"


@pytest.mark.parametrize("argv", [["--help"], ["sim", "--help"], ["scalesim", "--help"]])
def test_help_shows_version(capsys, argv):
    from accelkit.cli import main as accelkit_main

    try:
        accelkit_main(argv)
    except SystemExit:
        pass
    assert "--version" in capsys.readouterr().out


def _complete(script: str, *words: str) -> list[str]:
    """Run the bash completion function on `accelkit words...` (the last word is being completed)."""
    line = " ".join(shlex.quote(w) for w in ("accelkit", *words))
    probe = f'{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words)}; _accelkit; printf "%s\\n" "${{COMPREPLY[@]}}"'
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.split()


def test_bash_completion_comes_from_the_parsers(capsys, tmp_path):
    from accelkit.sim.cli import build_parser
    from accelkit.sim.completion import main as completion

    assert completion(["bash"]) == 0
    script = capsys.readouterr().out
    assert _complete(script, "s") == ["sim", "scalesim"]
    assert _complete(script, "sim", "--network", "") == list(NETWORKS)
    assert _complete(script, "sim", "--preset", "") == ["tpu_v1", "eyeriss"]
    assert _complete(script, "sim", "--dataflow", "w") == ["ws"]
    assert _complete(script, "scalesim", "-i", "") == ["conv", "gemm"]
    assert _complete(script, "dse", "--executor", "") == ["process", "serial", "ray"]
    assert "--precision" in _complete(script, "roofline", "--p")
    flags = {flag for action in build_parser()._actions for flag in action.option_strings}
    assert set(_complete(script, "sim", "--")) == {flag for flag in flags if flag.startswith("--")}
    (tmp_path / "topo.csv").write_text("")
    assert _complete(script, "sim", "--topology", str(tmp_path / "to")) == [str(tmp_path / "topo.csv")]


def test_zsh_completion_loads_the_bash_function(capsys):
    from accelkit.sim.completion import main as completion

    assert completion(["zsh"]) == 0
    script = capsys.readouterr().out
    assert "bashcompinit" in script and "complete -o default -F _accelkit accelkit" in script
    assert _complete(script.replace("autoload -U +X bashcompinit && bashcompinit\n", ""), "sim", "--mode", "") == [
        "native",
        "compat",
    ]
    assert completion(["fish"]) == 2 and "expected one of bash, zsh, got 'fish'" in capsys.readouterr().err


def test_user_mode_config_in_native_mode_says_how_it_reads_the_bandwidth(capsys, tmp_path):
    (tmp_path / "scale.cfg").write_text(SCALESIM_CFG.replace("InterfaceBandwidth: CALC", "InterfaceBandwidth: USER"))
    argv = ["--config", str(tmp_path / "scale.cfg"), "--network", "resnet50", "--clock-mhz", "500", "--quiet"]
    code, _, err = run(capsys, *argv)
    assert code == 0 and err == (
        "accelkit sim: note: the config's Bandwidth of 10 words/cycle is per operand in SCALE-Sim; native mode reads "
        "it as the total of one shared DRAM channel (set it with --bandwidth)\n"
    )
    assert run(capsys, *argv, "--bandwidth", "30")[2] == ""
