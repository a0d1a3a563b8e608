"""The roofline chart (matplotlib, log-log: roofs and points labelled) and its table as CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from accelkit._optional import require
from accelkit.roofline.devices import Device
from accelkit.roofline.points import Point

_MARKERS = {"analytic": "o", "measured": "s", "simulated": "^"}


def table_rows(points: list[Point]) -> list[dict]:
    return [point.row() for point in points]


def write_table(points: list[Point], stem: Path) -> tuple[Path, Path]:
    """<stem>.csv and <stem>.json: one row per point with its bound, which roof sets it and the fraction reached."""
    rows = table_rows(points)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else ["name"])
    writer.writeheader()
    writer.writerows(rows)
    csv_path, json_path = stem.with_suffix(".csv"), stem.with_suffix(".json")
    csv_path.write_text(text.getvalue())
    json_path.write_text(json.dumps(rows, indent=2) + "\n")
    return csv_path, json_path


def plot(points: list[Point], device: Device, path: Path, *, title: str | None = None) -> Path:
    """Roofs of `device` (every compute precision as a dashed line, the default solid) and the points."""
    matplotlib = require("matplotlib", feature="accelkit roofline")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    intensities = [p.intensity for p in points if math.isfinite(p.intensity)] or [1.0]
    low = min(min(intensities), device.ridge() or 1.0) / 10
    high = max(max(intensities), device.ridge() or 1.0) * 10
    xs = [low * (high / low) ** (i / 200) for i in range(201)]
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    for index, (precision, peak) in enumerate(device.peaks_ops_per_s):
        ys = [min(peak, x * device.bandwidth_bytes_per_s) if device.bandwidth_bytes_per_s else peak for x in xs]
        ax.plot(xs, ys, "-" if index == 0 else "--", color="black" if index == 0 else "grey", linewidth=1.2)
        ax.annotate(f"{precision} {peak / 1e12:.3g} T/s", (xs[-1], peak), ha="right", va="bottom", fontsize=7)
    if device.bandwidth_bytes_per_s:
        ax.annotate(f"{device.bandwidth_bytes_per_s / 1e9:,.0f} GB/s", (xs[2], xs[2] * device.bandwidth_bytes_per_s),
                    rotation=0, fontsize=7, va="bottom")  # fmt: skip
    for kind, marker in _MARKERS.items():
        chosen = [p for p in points if p.kind == kind and p.achieved_ops_per_s and math.isfinite(p.intensity)]
        if chosen:
            ax.scatter([p.intensity for p in chosen], [p.achieved_ops_per_s for p in chosen], marker=marker,
                       label=kind, zorder=3)  # fmt: skip
            for p in chosen:
                ax.annotate(p.name, (p.intensity, p.achieved_ops_per_s), fontsize=5, xytext=(3, 2),
                            textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (ops per DRAM byte)")
    ax.set_ylabel("ops per second")
    ax.set_title(title or f"Roofline: {device.name}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
