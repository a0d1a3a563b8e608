"""The sweep bench/dse_sweep.py and bench/dse_ray.py share: 2,000 designs x the 54 ResNet-50 layers, native mode."""

SPEC = """\
name: bench_resnet50
parameters:
  rows: [8, 16, 32, 64, 128]
  cols: [8, 16, 32, 64, 128]
  dataflow: [ws, os]
  ifmap_sram_kib: [32, 64, 128, 256, 512]
  filter_sram_kib: [32, 64, 128, 256]
  ofmap_sram_kib: [32, 64]
  dram_bw_words_per_cycle: [16]
workloads:
  - network: resnet50
objectives: [latency, energy, area]
"""


def spec(designs: int):
    """The first `designs` of the 2,000 (rows shrink first); the full grid when designs >= 2000."""
    from accelkit.sim.dse.spec import parse_spec

    full = parse_spec(SPEC, "bench_resnet50.yaml")
    if designs >= full.grid_size:
        return full
    text = SPEC.replace("ofmap_sram_kib: [32, 64]", "ofmap_sram_kib: [32]")
    for values in ("[32, 64, 128, 256]", "[32, 64]", "[32]"):
        small = parse_spec(text, "bench.yaml")
        if small.grid_size <= designs:
            return small
        text = text.replace("filter_sram_kib: [32, 64, 128, 256]", f"filter_sram_kib: {values}", 1)
    return parse_spec(text.replace("ifmap_sram_kib: [32, 64, 128, 256, 512]", "ifmap_sram_kib: [32]"), "bench.yaml")
