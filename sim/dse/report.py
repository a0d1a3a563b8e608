"""A sweep's files: the table as parquet and CSV, Pareto and breakdown PNGs, and one self-contained HTML report."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from accelkit.sim.dse.evaluate import layer_breakdown
from accelkit.sim.dse.plots import breakdown_figure, objective_pairs, pareto_figure
from accelkit.sim.dse.space import OBJECTIVES


def knee_design(result) -> int:
    """The front design closest to the ideal point after scaling each objective to [0, 1] over the front."""
    front = result.front
    scores = np.zeros(len(front))
    for name in result.spec.objectives:
        column, sign = OBJECTIVES[name]
        values = front[column].to_numpy(dtype=np.float64) * sign
        span = values.max() - values.min()
        scores += (values - values.min()) / span if span > 0 else 0.0
    return int(front["design"].iloc[int(np.argmin(scores))])


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def write_report(result, out_dir: str | Path = ".", *, design: int | None = None) -> dict[str, Path]:
    """Write `<name>_results.{parquet,csv}`, `<name>_pareto_<x>_<y>.png`, `<name>_layers.png` and
    `<name>_report.html` into `out_dir`; returns the paths by kind. `design` picks the breakdown (default: the
    knee of the front)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = result.spec.name
    paths = {"parquet": out / f"{name}_results.parquet", "csv": out / f"{name}_results.csv"}
    result.table.to_parquet(paths["parquet"], index=False)
    result.table.to_csv(paths["csv"], index=False)
    chosen = knee_design(result) if design is None else design
    images = {}
    for x, y in objective_pairs(result.spec.objectives):
        images[f"pareto_{x}_{y}"] = _png(pareto_figure(result.table, x, y, chosen=chosen))
    layers = layer_breakdown(result.hardware(chosen), result.spec.workloads, result.rows)
    images["layers"] = _png(breakdown_figure(layers, f"design {chosen}: {_describe(result, chosen)}"))
    for key, data in images.items():
        paths[key] = out / f"{name}_{key}.png"
        paths[key].write_bytes(data)
    paths["html"] = out / f"{name}_report.html"
    paths["html"].write_text(_html(result, images, chosen, layers))
    return paths


def _describe(result, design: int) -> str:
    row = result.table.loc[result.table["design"] == design].iloc[0]
    return ", ".join(f"{p.name}={row[p.name]}" for p in result.spec.parameters)


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _html(result, images: dict[str, bytes], chosen: int, layers: list[dict]) -> str:
    spec, table = result.spec, result.table
    params = "".join(f"<li><b>{p.name}</b>: {html.escape(str(list(p.values)))}</li>" for p in spec.parameters)
    limits = {k: v for k, v in vars(spec.constraints).items() if v is not None}
    workloads = ", ".join(f"{w.name} ({len(w.layers)} layers)" for w in spec.workloads)
    front = result.front.drop(columns=["on_front"])
    pareto = "".join(_img(data, key) for key, data in images.items() if key.startswith("pareto"))
    rate = len(table) / result.seconds if result.seconds > 0 else float("nan")
    layer_rows = "".join(
        f"<tr><td>{html.escape(r['workload'])}</td><td>{html.escape(r['layer'])}</td><td>{int(r['total_cycles']):,}</td>"
        f"<td>{int(r['stall_cycles']):,}</td><td>{int(r['dram_words']):,}</td>"
        f"<td>{sum(r[k] for k in r if k.endswith('_energy_pj')) / 1e6:,.2f}</td></tr>"
        for r in layers
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>accelkit dse: {html.escape(spec.name)}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto}}table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}img{{max-width:100%}}</style></head><body>
<h1>Design-space exploration: {html.escape(spec.name)}</h1>
<p>Spec <code>{html.escape(spec.path)}</code>, mode {spec.mode}, search {spec.search.method}
({len(table)} designs evaluated, {result.evaluations:,} layer simulations run, the rest from the cache;
{result.seconds:.2f} s, {rate:,.0f} designs/s).</p>
<h2>Space</h2><ul>{params}</ul><p>Constraints: {html.escape(str(limits) if limits else "none")}.
Workloads: {html.escape(workloads)}. Objectives: {", ".join(spec.objectives)}.</p>
<h2>Pareto front ({len(front)} designs)</h2>{pareto}
{front.to_html(index=False, float_format=lambda v: f"{v:.4g}")}
<h2>Per-layer breakdown of design {chosen}</h2><p>{html.escape(_describe(result, chosen))} (the knee of the
front unless another design was asked for).</p>{_img(images["layers"], "layers")}
<table><tr><th>workload</th><th>layer</th><th>cycles</th><th>stalls</th><th>DRAM words</th><th>energy uJ</th></tr>
{layer_rows}</table>
</body></html>
"""
