"""Small DSE specs the tests share: a few tiny GEMM and conv layers, so a design simulates in about a millisecond."""

SMALL = """\
name: small
parameters:
  rows: [2, 4, 8, 16]
  cols: [2, 4, 8, 16]
  dataflow: [ws, os, is]
  ifmap_sram_kib: [1, 4]
  dram_bw_words_per_cycle: [2, 8]
constraints:
  max_pes: 128
workloads:
  - name: tiny
    batch: 2
    seq_len: 16
    layers:
      - {name: fc1, n: 24, k: 40}
      - {name: fc2, n: 40, k: 24}
      - {name: conv, ifmap_h: 8, ifmap_w: 8, filter_h: 3, filter_w: 3, channels: 4, num_filters: 8, pad_h: 1, pad_w: 1}
objectives: [latency, energy, area]
"""


def with_search(text: str, search: str) -> str:
    return text + search
