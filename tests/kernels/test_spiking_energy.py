"""The synaptic-operation counters and the Horowitz 45 nm energy estimate (kernels/spiking/energy.py)."""

import pytest

from accelkit.kernels.spiking import energy
from accelkit.kernels.spiking.energy import SynapticOps


def test_ops_add_and_energy():
    ops = SynapticOps(acs=10, macs=2) + SynapticOps(acs=5)
    assert ops == SynapticOps(acs=15, macs=2)
    assert energy.energy_pj(ops) == pytest.approx(15 * 0.9 + 2 * 4.6)
    assert energy.energy_pj(ops, e_mac_pj=1.0, e_ac_pj=0.1) == pytest.approx(1.5 + 2.0)
    table = energy.HOROWITZ_45NM_PJ
    assert table["fp32_mac"] == pytest.approx(table["fp32_add"] + table["fp32_mult"])


def test_counting_collects_per_op_and_nests():
    energy.record("outside", SynapticOps(acs=1))
    assert not energy.is_counting()
    with energy.counting() as outer:
        energy.record("a", SynapticOps(acs=3))
        with energy.counting() as inner:
            assert energy.is_counting()
            energy.record("b", SynapticOps(macs=4))
            energy.record("a", SynapticOps(acs=1))
    assert not energy.is_counting()
    assert outer.by_op == {"a": SynapticOps(acs=4), "b": SynapticOps(macs=4)}
    assert inner.by_op == {"b": SynapticOps(macs=4), "a": SynapticOps(acs=1)}
    assert outer.total == SynapticOps(acs=4, macs=4)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="acs"):
        SynapticOps(acs=-1)
    with pytest.raises(TypeError, match="macs"):
        SynapticOps(macs=1.5)
    with pytest.raises(TypeError, match="ops"):
        energy.energy_pj((1, 2))
    with pytest.raises(ValueError, match="e_ac_pj"):
        energy.energy_pj(SynapticOps(), e_ac_pj=-1.0)
    with energy.counting(), pytest.raises(ValueError, match="op_name"):
        energy.record("", SynapticOps())
