"""Spec errors name the file, the line and the key."""

import pytest
from specs import SMALL

from accelkit.sim.dse.spec import SpecError, load_spec, parse_spec


def _error(tmp_path, text: str) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return str(info.value)


def test_small_spec_loads():
    spec = parse_spec(SMALL, "small.yaml")
    assert spec.grid_size == 4 * 4 * 3 * 2 * 2
    assert [w.name for w in spec.workloads] == ["tiny"]
    assert spec.workloads[0].layers[0].m == 32  # batch 2 x seq_len 16


def test_malformed_yaml(tmp_path):
    message = _error(tmp_path, "name: x\nparameters:\n  rows: [1, 2\nworkloads: []\n")
    assert message.startswith(f"{tmp_path / 'spec.yaml'}:4: malformed YAML")


def test_unknown_parameter(tmp_path):
    message = _error(tmp_path, SMALL.replace("  dataflow: [ws, os, is]", "  dataflw: [ws, os, is]"))
    assert message.endswith("spec.yaml:5: parameters.dataflw: unknown parameter; expected one of rows, cols, "
                            "dataflow, ifmap_sram_kib, filter_sram_kib, ofmap_sram_kib, dram_bw_words_per_cycle, "
                            "clock_mhz, word_bytes")  # fmt: skip


def test_empty_range(tmp_path):
    assert "spec.yaml:4: parameters.cols: empty range" in _error(
        tmp_path, SMALL.replace("[2, 4, 8, 16]\n  d", "[]\n  d")
    )
    text = SMALL.replace("cols: [2, 4, 8, 16]", "cols: {from: 16, to: 2, factor: 2}")
    assert "spec.yaml:4: parameters.cols: empty range" in _error(tmp_path, text)


def test_bad_value_names_its_item(tmp_path):
    message = _error(tmp_path, SMALL.replace("dataflow: [ws, os, is]", "dataflow: [ws,\n    xs]"))
    assert "spec.yaml:6: parameters.dataflow[1]: 'xs'" in message


def test_impossible_constraints(tmp_path):
    message = _error(tmp_path, SMALL.replace("max_pes: 128", "max_pes: 2"))
    assert "spec.yaml:9: constraints: impossible: none of the 192 designs" in message


def test_unknown_keys_and_objectives(tmp_path):
    assert "spec.yaml:1: nme: unknown key" in _error(tmp_path, SMALL.replace("name: small", "nme: small"))
    text = SMALL.replace("objectives: [latency, energy, area]", "objectives: [latency,\n  speed]")
    assert "spec.yaml:19: objectives[1]: unknown objective 'speed'" in _error(tmp_path, text)
    assert "constraints.max_pe: unknown key" in _error(tmp_path, SMALL.replace("max_pes", "max_pe"))


def test_bad_layer_and_network(tmp_path):
    message = _error(tmp_path, SMALL.replace("{name: fc2, n: 40, k: 24}", "{name: fc2, n: 0, k: 24}"))
    assert "spec.yaml:16: workloads[0].layers[1]: Gemm.n must be an int in [1," in message
    text = SMALL.replace("  - name: tiny\n    batch: 2\n", "  - network: resnet51\n    batch: 2\n")
    assert "spec.yaml:11: workloads[0]" in _error(tmp_path, text)


def test_one_objective_refused(tmp_path):
    assert "spec.yaml:18: objectives: must list two or more" in _error(
        tmp_path, SMALL.replace("[latency, energy, area]", "[latency]")
    )
