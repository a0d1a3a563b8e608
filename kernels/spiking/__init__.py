"""Multi-step spiking neurons (IF, LIF, PLIF) with surrogate-gradient BPTT, QSD multi-level spikes, and the
synaptic-operation energy counters (energy.py) shared with the spike-driven attention ops."""
