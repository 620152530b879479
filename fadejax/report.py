"""The self-contained HTML report: a 3-D landscape to click, failures behind each point,
barycenters by radius, ranked failure modes to mark and export. Works offline: plotly's
JavaScript and every image are embedded in the one file."""

from __future__ import annotations

import html
import json
from typing import Any, Sequence

import numpy as np

from fadejax.summarize import RunSummaryData


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def points_3d(summary: RunSummaryData, keep: Sequence[int], fixed: dict[int, int] | None = None) -> list[dict[str, Any]]:
    """One point per combination of the kept axes' values. Axes in ``fixed`` are sliced at
    that value index; the rest are marginalised (mean of P and confidence, summed visits
    and failures, pooled examples)."""
    space = summary.config.concept_space()
    fixed = fixed or {}
    coords = np.stack(np.unravel_index(np.arange(space.num_actions), space.sizes), axis=1)
    groups: dict[tuple[int, ...], list[int]] = {}
    for cell, c in enumerate(coords):
        if all(c[axis] == index for axis, index in fixed.items()):
            groups.setdefault(tuple(int(c[a]) for a in keep), []).append(cell)
    points = []
    for key, cells in groups.items():
        visits = int(summary.visits[cells].sum())
        failures = int(summary.failures[cells].sum())
        point = {
            "key": list(key),
            "values": [space.axes[a].values[i] for a, i in zip(keep, key)],
            "cells": cells,
            "visits": visits,
            "failures": failures,
            "rate": failures / visits if visits else None,
            "mean_p": None if summary.policy_mean is None else float(np.mean(summary.policy_mean[cells])),
            "confidence": None if summary.policy_confidence is None else float(np.mean(summary.policy_confidence[cells])),
            "truth": None if summary.truth is None else float(np.mean(summary.truth[cells])),
            "examples": [e for c in cells for e in summary.examples.get(c, [])][:6],
        }
        points.append(point)
    return points


def _barycenter_values(summary: RunSummaryData, keep: Sequence[int]) -> dict[str, list[float]]:
    """Barycenters (fractional grid indices) mapped to axis values by linear interpolation."""
    axes = summary.config.concept_space().axes
    out = {}
    for radius, coords in summary.barycenters.items():
        out[str(radius)] = [float(np.interp(coords[a], np.arange(axes[a].size), axes[a].values)) for a in keep]
    return out


def report_data(summary: RunSummaryData, keep: Sequence[int], fixed: dict[int, int] | None = None) -> dict[str, Any]:
    space = summary.config.concept_space()
    fixed = fixed or {}
    return {
        "run": str(summary.run_dir),
        "axes": [space.names[a] for a in keep],
        "sliced": {space.names[a]: space.axes[a].values[i] for a, i in fixed.items()},
        "notes": summary.notes,
        "counts": {
            "queries": summary.queries, "failures": int(summary.failures.sum()), "entropy": summary.entropy,
            "iterations": summary.iterations, "planned": summary.planned, "partial": summary.partial,
        },
        "points": points_3d(summary, keep, fixed),
        "barycenters": _barycenter_values(summary, keep),
        "modes": [{k: _finite(v) for k, v in m.items()} for m in summary.modes],
    }


_SCRIPT = r"""
const D = JSON.parse(document.getElementById('fadejax-data').textContent);
const P = D.points;
const LAYERS = {mean_p: 'mean P(a|s) (eq. 10)', rate: 'observed failure rate', truth: 'true failure rate'};
const available = Object.keys(LAYERS).filter(k => P.some(p => p[k] !== null));
const layer = k => P.map(p => (p[k] === null ? 0 : p[k]));
const colour = layer(available[0]);
const raw = P.map(p => (p.confidence !== null ? p.confidence : p.visits));
const lo = Math.min(...raw), hi = Math.max(...raw);
const size = raw.map(v => 6 + 18 * (hi > lo ? (v - lo) / (hi - lo) : 0.5));
const fmt = v => (v === null || v === undefined ? '—' : (Math.abs(v) < 1 ? v.toFixed(3) : v.toFixed(2)));
const hover = P.map(p => D.axes.map((a, i) => a + ' = ' + p.values[i]).join('<br>') +
  '<br>mean P(a|s): ' + fmt(p.mean_p) + '<br>failures ' + p.failures + ' / ' + p.visits +
  (p.truth !== null ? '<br>true rate ' + fmt(p.truth) : ''));
const xyz = i => P.map(p => p.values[i] === undefined ? 0 : p.values[i]);
const radii = Object.keys(D.barycenters);
function bary(r) { const c = D.barycenters[r]; return {x: [c[0]], y: [c[1] ?? 0], z: [c[2] ?? 0]}; }
const b0 = radii.length ? bary(radii[0]) : {x: [], y: [], z: []};
Plotly.newPlot('landscape', [
  {type: 'scatter3d', mode: 'markers', x: xyz(0), y: xyz(1), z: xyz(2), customdata: P.map((p, i) => i),
   text: hover, hoverinfo: 'text', marker: {size: size, color: colour, colorscale: 'Viridis', showscale: true,
   colorbar: {title: {text: LAYERS[available[0]]}}, opacity: 0.9}, name: 'cells'},
  {type: 'scatter3d', mode: 'markers', x: b0.x, y: b0.y, z: b0.z, name: 'barycenter',
   marker: {symbol: 'diamond', size: 14, color: '#e4572e', line: {color: '#000', width: 1}}, hoverinfo: 'name'}
], {margin: {l: 0, r: 0, t: 10, b: 0}, scene: {xaxis: {title: {text: D.axes[0]}}, yaxis: {title: {text: D.axes[1] || ''}},
   zaxis: {title: {text: D.axes[2] || ''}}}, legend: {x: 0, y: 1}}, {displaylogo: false});
const by = document.getElementById('colour-by');
available.forEach(k => { const o = document.createElement('option'); o.value = k; o.textContent = LAYERS[k]; by.appendChild(o); });
by.addEventListener('change', () => Plotly.restyle('landscape', {'marker.color': [layer(by.value)], 'marker.colorbar.title.text': LAYERS[by.value]}, [0]));
const sel = document.getElementById('radius');
radii.forEach(r => { const o = document.createElement('option'); o.value = r; o.textContent = 'radius ' + r; sel.appendChild(o); });
sel.addEventListener('change', () => { const b = bary(sel.value); Plotly.restyle('landscape', {x: [b.x], y: [b.y], z: [b.z]}, [1]); });
function show(i) {
  const p = P[i], box = document.getElementById('failures');
  let h = '<h3>' + D.axes.map((a, k) => a + ' = ' + p.values[k]).join(', ') + '</h3><p>' + p.failures +
    ' failures in ' + p.visits + ' queries' + (p.truth !== null ? '; true failure rate ' + fmt(p.truth) : '') + '</p>';
  if (!p.examples.length) h += '<p class="muted">No recorded failure in this cell.</p>';
  h += '<div class="grid">' + p.examples.map(e => '<figure class="failure"><img alt="perturbed sample ' + e.sample +
    '" src="data:image/png;base64,' + e.image + '"><figcaption>true ' + e.label + ' → predicted ' + e.predicted +
    '<br>score ' + fmt(e.score) + ', reward ' + fmt(e.reward) + '</figcaption></figure>').join('') + '</div>';
  box.innerHTML = h;
}
document.getElementById('landscape').on('plotly_click', ev => { const i = ev.points[0].customdata; if (i !== undefined) show(i); });
function exportModes() {
  const chosen = [...document.querySelectorAll('input.mode:checked')].map(c => D.modes[+c.dataset.index]);
  const doc = {run: D.run, modes: chosen.map(m => ({cell: m.cell, concepts: m.concepts}))};
  const text = JSON.stringify(doc, null, 2);
  document.getElementById('export').textContent = text;
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], {type: 'application/json'}));
  a.download = 'modes.json'; a.click();
}
document.getElementById('export-button').addEventListener('click', exportModes);
"""

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d1d1f;max-width:1200px}
h1{font-size:1.4rem} .muted{color:#666} .notes li{color:#8a4b00}
.row{display:flex;gap:1rem;flex-wrap:wrap} #landscape{width:720px;height:560px;border:1px solid #ddd}
#failures{flex:1;min-width:300px} .grid{display:flex;flex-wrap:wrap;gap:.5rem}
figure.failure{margin:0;text-align:center;font-size:.8rem} figure.failure img{width:96px;height:96px;image-rendering:pixelated;border:1px solid #ccc}
table{border-collapse:collapse;margin-top:1rem;font-size:.9rem} td,th{border-bottom:1px solid #e5e5e5;padding:.3rem .6rem;text-align:left}
pre{background:#f6f6f6;padding:.6rem;max-height:12rem;overflow:auto}
"""


def render(summary: RunSummaryData, keep: Sequence[int], plotly_js: str, fixed: dict[int, int] | None = None) -> str:
    """The report as one HTML string (``plotly_js``: plotly's bundle, embedded inline)."""
    data = report_data(summary, keep, fixed)
    c = data["counts"]
    sliced = "".join(f" Sliced at {html.escape(k)} = {v:g}." for k, v in data["sliced"].items())
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in data["notes"])
    rows = []
    for i, m in enumerate(data["modes"]):
        concepts = ", ".join(f"{k}={v:g}" for k, v in m["concepts"].items())
        mean_p = "—" if m["mean_p"] is None else f"{m['mean_p']:.4f}"
        true_rate = "—" if m["true_rate"] is None else f"{m['true_rate']:.1%}"
        rows.append(
            f"<tr><td><input type='checkbox' class='mode' data-index='{i}' aria-label='fade mode {m['cell']}'></td>"
            f"<td>{m['rank']}</td><td>{m['cell']}</td><td>{html.escape(concepts)}</td><td>{m['failure_rate']:.1%}</td>"
            f"<td>{m['visits']}</td><td>{mean_p}</td><td>{true_rate}</td><td>{html.escape(m['minimal']['text'])}</td></tr>"
        )
    payload = json.dumps(data, allow_nan=False, default=_finite).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fadejax report — {html.escape(data['run'])}</title>
<style>{_STYLE}</style><script>{plotly_js}</script></head>
<body>
<h1>Failure landscape of {html.escape(data['run'])}</h1>
<p>{c['queries']} queries, {c['failures']} failures ({c['failures'] / max(c['queries'], 1):.1%}); entropy of failures over cells
{c['entropy']:.2f} nats; {c['iterations']} of {c['planned']} iterations. Size: confidence (1/std of P(a|s); visits where no policy is available).
Click a point to see the failures behind it.{sliced}</p>
<ul class="notes">{notes}</ul>
<div class="row"><div><div id="landscape"></div>
<label>Colour: <select id="colour-by"></select></label>
<label>Barycenter (eq. 11) around the highest-mass cell: <select id="radius"></select></label></div>
<div id="failures"><p class="muted">Click a point of the landscape.</p></div></div>
<h2>Failure modes</h2>
<p class="muted">Ranked by observed failure rate. "Minimal description": axes whose reset to a neutral value
does not lower the true failure rate by the margin are not needed (after PRIME).</p>
<table id="modes"><thead><tr><th>fade</th><th>#</th><th>cell</th><th>concepts</th><th>failure rate</th><th>visits</th>
<th>mean P(a|s)</th><th>true rate</th><th>minimal description</th></tr></thead><tbody>{''.join(rows)}</tbody></table>
<p><button id="export-button">Export marked modes (modes.json)</button></p>
<pre id="export"></pre>
<script type="application/json" id="fadejax-data">{payload}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


def write_report(summary: RunSummaryData, out_dir, keep: Sequence[int], fixed: dict[int, int] | None = None) -> dict[str, str]:
    """Write ``report.html``, ``summary.json`` (every figure's numbers) and ``landscape.csv``."""
    import csv
    from pathlib import Path

    from plotly.offline import get_plotlyjs

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.html").write_text(render(summary, keep, get_plotlyjs(), fixed))
    data = report_data(summary, keep, fixed)
    for point in data["points"]:
        point.pop("examples")  # images stay in the HTML; the JSON keeps the numbers
    (out / "summary.json").write_text(json.dumps(data, indent=1, default=_finite))
    space = summary.config.concept_space()
    with open(out / "landscape.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["cell", *space.names, "visits", "failures", "observed_rate", "mean_p", "confidence", "true_rate"])
        for cell in range(space.num_actions):
            concepts = space.describe(cell)
            writer.writerow([
                cell, *concepts.values(), int(summary.visits[cell]), int(summary.failures[cell]),
                "" if not np.isfinite(summary.rate[cell]) else f"{summary.rate[cell]:.6f}",
                "" if summary.policy_mean is None else f"{summary.policy_mean[cell]:.6g}",
                "" if summary.policy_confidence is None else f"{summary.policy_confidence[cell]:.6g}",
                "" if summary.truth is None else f"{summary.truth[cell]:.6f}",
            ])
    return {"html": str(out / "report.html"), "json": str(out / "summary.json"), "csv": str(out / "landscape.csv")}
