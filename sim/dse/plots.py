"""Matplotlib figures of a sweep: Pareto scatter per objective pair and one design's per-layer breakdown."""

from __future__ import annotations

import itertools

from accelkit._optional import require
from accelkit.sim.dse.space import OBJECTIVES

_LABELS = {
    "latency_ms": "latency (ms)",
    "energy_mj": "energy (mJ)",
    "area_mm2": "area (mm$^2$)",
    "edp_mj_ms": "energy x delay (mJ ms)",
    "throughput_per_mm2": "throughput per area (1/s/mm$^2$)",
}


def _pyplot():
    matplotlib = require("matplotlib", feature="accelkit dse plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def objective_pairs(objectives: tuple[str, ...]) -> list[tuple[str, str]]:
    """The first objective against each other one (all pairs when there are three)."""
    if len(objectives) == 3:
        return list(itertools.combinations(objectives, 2))
    return [(objectives[0], other) for other in objectives[1:]]


def pareto_figure(table, x: str, y: str, *, chosen: int | None = None):
    """All designs in grey, the front over all objectives in colour by dataflow, front points labelled by id."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=110)
    cx, cy = OBJECTIVES[x][0], OBJECTIVES[y][0]
    rest, front = table[~table["on_front"]], table[table["on_front"]]
    ax.scatter(rest[cx], rest[cy], s=10, c="#bbbbbb", label="dominated")
    groups = front.groupby("dataflow") if "dataflow" in front else [("front", front)]
    for name, part in groups:
        ax.scatter(part[cx], part[cy], s=28, label=f"front ({name})", zorder=3)
    for _, row in front.iterrows():
        ax.annotate(str(int(row["design"])), (row[cx], row[cy]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    if chosen is not None:
        pick = table[table["design"] == chosen]
        ax.scatter(pick[cx], pick[cy], s=120, facecolors="none", edgecolors="black", label="breakdown", zorder=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(_LABELS[cx])
    ax.set_ylabel(_LABELS[cy])
    ax.set_title(f"{y} vs {x}: {int(table['on_front'].sum())} of {len(table)} designs on the front")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def breakdown_figure(layers: list[dict], title: str):
    """Per layer: compute and stall cycles (top), energy by MAC, IFMAP, filter and OFMAP traffic (bottom)."""
    plt = _pyplot()
    # Past ~100 bars the labels overlap: label every step-th layer (BERT-base lists 348).
    step = max(1, -(-len(layers) // 100))
    names = [f"{row['workload']}:{row['layer']}" if i % step == 0 else "" for i, row in enumerate(layers)]
    width = max(6.4, 0.14 * len(layers) + 2)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(width, 6.4), dpi=110, sharex=True)
    xs = range(len(layers))
    compute = [row["total_cycles"] - row["stall_cycles"] for row in layers]
    stalls = [row["stall_cycles"] for row in layers]
    top.bar(xs, compute, label="compute cycles")
    top.bar(xs, stalls, bottom=compute, label="stall cycles")
    top.set_ylabel("cycles")
    top.legend(fontsize=7)
    base = [0.0] * len(layers)
    for part in ("mac", "ifmap", "filter", "ofmap"):
        values = [row[f"{part}_energy_pj"] / 1e6 for row in layers]
        bottom.bar(xs, values, bottom=base, label=part)
        base = [b + v for b, v in zip(base, values, strict=True)]
    bottom.set_ylabel("energy (uJ)")
    bottom.legend(fontsize=7)
    bottom.set_xticks(list(xs))
    bottom.set_xticklabels(names, rotation=90, fontsize=5)
    top.set_title(title)
    fig.tight_layout()
    return fig
