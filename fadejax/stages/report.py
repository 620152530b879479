"""The self-contained HTML report: a 3-D landscape to click, failures behind each point,
barycenters by radius, ranked failure modes to mark and export. Works offline: plotly's
JavaScript and every image are embedded in the one file."""

from __future__ import annotations

import html
import json
from typing import Any

import numpy as np

from fadejax.core.spaces import format_value
from fadejax.stages.corruption_report import corruption_section, write_corruptions_csv
from fadejax.stages.summarize import RunSummaryData


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def points_3d(summary: RunSummaryData) -> list[dict[str, Any]]:
    """One point per combination of the view's kept axes' values (``summary.keep``); axes in
    ``summary.fixed`` are sliced, the rest pooled: visits and failures summed, P(a|s) summed
    into the point's probability (eq. 10), the true rate averaged, examples pooled."""
    space = summary.config.concept_space()
    keep = summary.keep
    rate = summary.view_rate
    coords = np.unravel_index(np.asarray(list(summary.examples), np.int64), space.sizes) if summary.examples else None
    by_key: dict[tuple[int, ...], list[dict]] = {}
    for j, cell in enumerate(summary.examples):
        if all(coords[a][j] == i for a, i in summary.fixed.items()):
            by_key.setdefault(tuple(int(coords[a][j]) for a in keep), []).extend(summary.examples[cell])
    points = []
    for key in np.ndindex(*summary.view_visits.shape):
        cell = None
        if summary.pooled == 1:  # the point is one cell
            index = [0] * space.num_axes
            for a, i in zip(keep, key):
                index[a] = i
            for a, i in summary.fixed.items():
                index[a] = i
            cell = int(np.ravel_multi_index(index, space.sizes))
        points.append({
            "key": [int(i) for i in key],
            "values": [space.axes[a].values[i] for a, i in zip(keep, key)],
            "cell": cell,
            "pooled": summary.pooled,
            "visits": int(summary.view_visits[key]),
            "failures": int(summary.view_failures[key]),
            "rate": None if not np.isfinite(rate[key]) else float(rate[key]),
            "estimate": None if summary.view_estimate is None or not np.isfinite(summary.view_estimate[key]) else float(summary.view_estimate[key]),
            "mean_p": None if summary.view_policy_mean is None else float(summary.view_policy_mean[key]),
            "confidence": None if summary.view_policy_confidence is None else float(summary.view_policy_confidence[key]),
            "truth": None if summary.view_truth is None else float(summary.view_truth[key]),
            "examples": by_key.get(tuple(int(i) for i in key), [])[:6],
        })
    return points


def barycenter_values(summary: RunSummaryData) -> dict[str, list[float]]:
    """Barycenters (fractional indices on the view's grid) mapped to axis values by linear
    interpolation (categorical axes stay in index units, as the 3-D plot draws them)."""
    axes = summary.config.concept_space().axes
    return {
        str(radius): [c if axes[a].categorical else float(np.interp(c, np.arange(axes[a].size), axes[a].values)) for c, a in zip(coords, summary.keep)]
        for radius, coords in summary.barycenters.items()
    }


def mode_points(summary: RunSummaryData, points: list[dict[str, Any]]) -> list[dict[str, int]]:
    """The report's ranked modes on the landscape: ``[{"rank", "point"}]``, ``point`` indexing
    ``points`` (modes outside the view's slice are left out)."""
    space = summary.config.concept_space()
    where = {tuple(p["key"]): i for i, p in enumerate(points)}
    marked = []
    for mode in summary.modes:
        index = np.unravel_index(int(mode["cell"]), space.sizes)
        if all(int(index[a]) == i for a, i in summary.fixed.items()):
            point = where.get(tuple(int(index[a]) for a in summary.keep))
            if point is not None:
                marked.append({"rank": int(mode["rank"]), "point": point})
    return marked


def report_data(summary: RunSummaryData) -> dict[str, Any]:
    space = summary.config.concept_space()
    points = points_3d(summary)
    return {
        "run": str(summary.run_dir),
        "kind": summary.kind,
        "axes": [space.names[a] for a in summary.keep],
        "sliced": {space.names[a]: space.axes[a].values[i] for a, i in summary.fixed.items()},
        "pooled": summary.pooled,
        "num_actions": space.num_actions,
        "notes": summary.notes,
        "counts": {
            "queries": summary.queries, "failures": summary.failures_total, "entropy": summary.entropy,
            "iterations": summary.iterations, "planned": summary.planned, "partial": summary.partial,
            "cells_visited": int(summary.cells.size),
        },
        "points": points,
        "mode_points": mode_points(summary, points),
        "barycenters": barycenter_values(summary),
        "modes": [{k: _finite(v) for k, v in m.items()} for m in summary.modes],
        "policy_modes": [{k: _finite(v) for k, v in m.items()} for m in summary.policy_modes],
        "attributes": summary.attributes,
        "family": summary.family,
        "corruptions": summary.corruptions,
    }


_SCRIPT = r"""
const D = JSON.parse(document.getElementById('fadejax-data').textContent);
const P = D.points;
// The first layer shown is the estimated failure rate: the policy's mass (eq. 10) of a
// searcher that concentrates is near zero almost everywhere, and shows nothing of the landscape.
const LAYERS = {estimate: 'estimated failure rate', mean_p: 'mean P(a|s) (eq. 10)', rate: 'observed failure rate', truth: 'true failure rate'};
const available = Object.keys(LAYERS).filter(k => P.some(p => p[k] !== null));
const layer = k => P.map(p => (p[k] === null ? 0 : p[k]));
const colour = layer(available[0]);
const raw = P.map(p => (p.confidence !== null ? p.confidence : p.visits));
const lo = Math.min(...raw), hi = Math.max(...raw);
const size = raw.map(v => 6 + 18 * (hi > lo ? (v - lo) / (hi - lo) : 0.5));
const fmt = v => (v === null || v === undefined ? '—' : (Math.abs(v) < 1 ? v.toFixed(3) : v.toFixed(2)));
const hover = P.map(p => D.axes.map((a, i) => a + ' = ' + p.values[i]).join('<br>') +
  '<br>estimated failure rate: ' + fmt(p.estimate) + '<br>mean P(a|s): ' + fmt(p.mean_p) + '<br>failures ' + p.failures + ' / ' + p.visits +
  (p.truth !== null ? '<br>true rate ' + fmt(p.truth) : ''));
const xyz = i => P.map(p => p.values[i] === undefined ? 0 : (typeof p.values[i] === 'number' ? p.values[i] : p.key[i]));
const radii = Object.keys(D.barycenters);
function bary(r) { const c = D.barycenters[r]; return {x: [c[0]], y: [c[1] ?? 0], z: [c[2] ?? 0]}; }
const b0 = radii.length ? bary(radii[0]) : {x: [], y: [], z: []};
Plotly.newPlot('landscape', [
  {type: 'scatter3d', mode: 'markers', x: xyz(0), y: xyz(1), z: xyz(2), customdata: P.map((p, i) => i),
   text: hover, hoverinfo: 'text', marker: {size: size, color: colour, colorscale: 'Viridis', showscale: true,
   colorbar: {title: {text: LAYERS[available[0]]}}, opacity: 0.9}, name: 'cells'},
  {type: 'scatter3d', mode: 'markers', x: b0.x, y: b0.y, z: b0.z, name: 'barycenter',
   marker: {symbol: 'diamond', size: 14, color: '#e4572e', line: {color: '#000', width: 1}}, hoverinfo: 'name'},
  {type: 'scatter3d', mode: 'markers+text', name: 'top modes (estimated)',
   x: D.mode_points.map(m => xyz(0)[m.point]), y: D.mode_points.map(m => xyz(1)[m.point]), z: D.mode_points.map(m => xyz(2)[m.point]),
   text: D.mode_points.map(m => '#' + m.rank), textposition: 'top center', customdata: D.mode_points.map(m => m.point),
   marker: {symbol: 'circle-open', size: 16, color: '#d62728', line: {width: 3}}, hoverinfo: 'text'}
], {margin: {l: 0, r: 0, t: 10, b: 0}, scene: {xaxis: {title: {text: D.axes[0]}}, yaxis: {title: {text: D.axes[1] || ''}},
   zaxis: {title: {text: D.axes[2] || ''}}}, legend: {x: 0, y: 1}}, {displaylogo: false});
const by = document.getElementById('colour-by');
available.forEach(k => { const o = document.createElement('option'); o.value = k; o.textContent = LAYERS[k]; by.appendChild(o); });
by.addEventListener('change', () => Plotly.restyle('landscape', {'marker.color': [layer(by.value)], 'marker.colorbar.title.text': LAYERS[by.value]}, [0]));
const sel = document.getElementById('radius');
radii.forEach(r => { const o = document.createElement('option'); o.value = r; o.textContent = 'radius ' + r; sel.appendChild(o); });
sel.addEventListener('change', () => { const b = bary(sel.value); Plotly.restyle('landscape', {x: [b.x], y: [b.y], z: [b.z]}, [1]); });
function el(tag, text, cls) {  // untrusted text (model outputs, prompts) goes in as text, never as HTML
  const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e;
}
function example(e) {
  const fig = el('figure', undefined, 'failure ' + D.kind);
  if (D.kind === 'text') {
    fig.appendChild(el('p', 'edited text: ' + e.text, 'text'));
    fig.appendChild(el('p', 'summary: ' + e.summary, 'summary'));
    fig.appendChild(el('figcaption', 'BLEU ' + fmt(e.bleu) + ' (unedited text: ' + fmt(e.bleu_clean) + '), reward ' + fmt(e.reward)));
    return fig;
  }
  if (D.kind === 'recorded') {  // a replayed recording keeps answers, not inputs
    fig.appendChild(el('figcaption', 'held-out sample ' + e.sample + ' failed (recorded answer), reward ' + fmt(e.reward)));
    return fig;
  }
  if (D.kind === 'fields') {  // an audit without a view of its own: the record's fields
    Object.keys(e).forEach(k => fig.appendChild(el('p', k + ': ' + (typeof e[k] === 'number' ? fmt(e[k]) : JSON.stringify(e[k])))));
    return fig;
  }
  const img = el('img'); img.src = 'data:image/png;base64,' + e.image; fig.appendChild(img);
  if (D.kind === 'generated') {
    img.alt = 'generated image';
    fig.appendChild(el('figcaption', e.prompt));
    fig.appendChild(el('figcaption', 'reward ' + fmt(e.reward)));
  } else {
    img.alt = 'perturbed sample ' + e.sample;
    const name = (e, k) => (e[k + '_name'] !== undefined ? e[k + '_name'] : e[k]);
    if (D.family) {  // every model's answer to the same query
      fig.appendChild(el('figcaption', 'true ' + name(e, 'label') + ', reward ' + fmt(e.reward)));
      D.family.models.forEach(m => fig.appendChild(el('figcaption', m + ': ' + name(e, m + '.predicted') + (e[m + '.failed'] ? ' ✗' : ' ✓'))));
    } else {
      fig.appendChild(el('figcaption', 'true ' + name(e, 'label') + ' → predicted ' + name(e, 'predicted') + ', score ' + fmt(e.score) + ', reward ' + fmt(e.reward)));
    }
  }
  return fig;
}
if (D.family) {  // each model's landscape side by side, one colour scale
  const F = D.family, box = document.getElementById('family-views');
  F.models.forEach(m => {
    const div = el('div', undefined, 'family-view'); box.appendChild(div);
    const z = F.views[m], two = F.view_axes.length > 1;
    const x = two ? F.view_values[1] : F.view_values[0], y = two ? F.view_values[0] : [''];
    Plotly.newPlot(div, [{type: 'heatmap', z: two ? z : [z], x: x, y: y, zmin: 0, zmax: 1, colorscale: 'Viridis',
      showscale: m === F.models[F.models.length - 1], hoverongaps: false,
      hovertemplate: (two ? F.view_axes[0] + ' %{y}, ' : '') + (two ? F.view_axes[1] : F.view_axes[0]) + ' %{x}: failure rate %{z:.2f}<extra></extra>'}],
      {title: {text: m, font: {size: 13}}, margin: {l: 50, r: 10, t: 30, b: 45},
       xaxis: {type: 'category', title: {text: two ? F.view_axes[1] : F.view_axes[0]}},
       yaxis: {type: 'category', title: {text: two ? F.view_axes[0] : ''}}}, {displayModeBar: false});
  });
}
function show(i) {
  const p = P[i], box = document.getElementById('failures');
  box.replaceChildren(el('h3', D.axes.map((a, k) => a + ' = ' + p.values[k]).join(', ')),
    el('p', p.failures + ' failures in ' + p.visits + ' queries' + (p.truth !== null ? '; true failure rate ' + fmt(p.truth) : '')));
  if (!p.examples.length) box.appendChild(el('p', 'No recorded failure in this cell.', 'muted'));
  const grid = el('div', undefined, 'grid'); p.examples.forEach(e => grid.appendChild(example(e))); box.appendChild(grid);
}
document.getElementById('landscape').on('plotly_click', ev => { const i = ev.points[0].customdata; if (i !== undefined) show(i); });
function exportModes() {
  const all = D.modes.concat(D.policy_modes);
  const chosen = [...document.querySelectorAll('input.mode:checked')].map(c => all[+c.dataset.index]);
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
figure.failure.text{text-align:left;max-width:100%;border-bottom:1px solid #eee;padding:.3rem 0} figure.failure.text p{margin:.2rem 0;white-space:pre-wrap}
figure.failure.generated img{width:160px;height:160px;image-rendering:auto} figure.failure.generated{max-width:170px}
figure.failure.fields{text-align:left;border-bottom:1px solid #eee;padding:.3rem 0} figure.failure.fields p{margin:.1rem 0}
.family-view{width:280px;height:250px;border:1px solid #ddd}
table{border-collapse:collapse;margin-top:1rem;font-size:.9rem} td,th{border-bottom:1px solid #e5e5e5;padding:.3rem .6rem;text-align:left}
pre{background:#f6f6f6;padding:.6rem;max-height:12rem;overflow:auto}
"""


def _mode_rows(modes: list[dict[str, Any]], offset: int, show_ranks: bool = False) -> str:
    """Table rows of ranked modes; checkboxes numbered from ``offset`` (the export's index);
    ``show_ranks``: beside each rank, the ranks of the estimated ranking its interval allows
    (for modes ranked by the estimate)."""
    rows = []
    for i, m in enumerate(modes):
        concepts = ", ".join(f"{k}={format_value(v)}" for k, v in m["concepts"].items())
        observed = "—" if m["failure_rate"] is None else f"{m['failure_rate']:.1%}"
        score = "—" if m.get("mean_score") is None else f"{m['mean_score']:.3f}"
        true_rate = "—" if m["true_rate"] is None else f"{m['true_rate']:.1%}"
        first, last = (m.get("ranks") or (0, 0)) if show_ranks else (0, 0)  # (summaries written before ranks: none)
        ranks = f" <span class='interval' title='the ranks its 95% interval allows'>({first}–{last})</span>" if last > first else ""
        estimate = ("—" if m.get("estimate") is None
                    else f"{m['estimate']:.1%} <span class='interval'>[{m['interval'][0]:.1%}, {m['interval'][1]:.1%}]</span>")
        rows.append(
            f"<tr><td><input type='checkbox' class='mode' data-index='{offset + i}' aria-label='fade mode {m['cell']}'></td>"
            f"<td>{m['rank']}{ranks}</td><td>{m['cell']}</td><td>{html.escape(concepts)}</td><td>{estimate}</td><td>{observed}</td>"
            f"<td>{m['visits']}</td><td>{score}</td><td>{true_rate}</td><td>{html.escape(m['minimal']['text'])}</td></tr>"
        )
    return "".join(rows)


def _family_section(f: dict[str, Any]) -> str:
    """The model family's comparison: landscapes side by side, shared and specific modes, agreement."""
    pct = lambda v: "—" if v is None else f"{v:.0%}"  # noqa: E731
    concepts = lambda row: html.escape(", ".join(f"{k}={format_value(v)}" for k, v in row["concepts"].items()))  # noqa: E731
    names = [html.escape(m) for m in f["models"]]
    rates = lambda row: "".join(f"<td>{pct(row['rates'][m])}</td>" for m in f["models"])  # noqa: E731
    head = "".join(f"<th>{n}</th>" for n in names)
    shared = "".join(f"<tr><td>{r['cell']}</td><td>{concepts(r)}</td>{rates(r)}</tr>" for r in f["shared"]) or \
        f"<tr><td colspan='{2 + len(names)}' class='muted'>none: no candidate mode fails every model</td></tr>"
    specific = "".join(f"<tr><td>{html.escape(r['model'])}</td><td>{r['cell']}</td><td>{concepts(r)}</td>{rates(r)}<td>{r['gap']:+.0%}</td></tr>"
                       for r in f["specific"]) or f"<tr><td colspan='{4 + len(names)}' class='muted'>none</td></tr>"
    corr = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
    agreement = "".join(f"<tr><td>{html.escape(r['a'])}</td><td>{html.escape(r['b'])}</td><td>{r['top_overlap']:.0%}</td><td>{corr(r['correlation'])}</td></tr>"
                        for r in f["agreement"])
    accuracy = ", ".join(f"{n} {pct(f['clean_accuracy'][m])}" for n, m in zip(names, f["models"]))
    source = ("every model's exhaustive landscape (fadejax landscape)" if f["source"] == "exhaustive"
              else "the records (every query was asked of every model); rates of the listed modes re-evaluated on every held-out sample")
    k = max((len(v) for v in f["top"].values()), default=0)
    return f"""<h2>Model family</h2>
<p>{len(names)} models audited on the same queries; clean held-out accuracy: {accuracy}. From {html.escape(source)}.
A model fails in a mode when it fails on at least {f['threshold']:.0%} of the held-out samples there.</p>
<div class="row" id="family-views"></div>
<h3>Shared by the whole family</h3>
<table id="family-shared"><thead><tr><th>cell</th><th>concepts</th>{head}</tr></thead><tbody>{shared}</tbody></table>
<h3>Specific to one model</h3>
<table id="family-specific"><thead><tr><th>model</th><th>cell</th><th>concepts</th>{head}<th>gap to the next model</th></tr></thead><tbody>{specific}</tbody></table>
<h3>Agreement</h3>
<table id="family-agreement"><thead><tr><th>model</th><th>model</th><th>top-{k} modes in common</th><th>landscape correlation</th></tr></thead><tbody>{agreement}</tbody></table>"""


def render(summary: RunSummaryData, plotly_js: str) -> str:
    """The report as one HTML string (``plotly_js``: plotly's bundle, embedded inline)."""
    data = report_data(summary)
    c = data["counts"]
    sliced = "".join(f" Sliced at {html.escape(k)} = {html.escape(format_value(v))}." for k, v in data["sliced"].items())
    if data["pooled"] > 1:
        sliced += f" Each point pools {data['pooled']} cells of the {data['num_actions']}-cell space (hidden axes marginalised)."
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in data["notes"])
    bias = ""
    if data["attributes"] is not None:
        a = data["attributes"]
        ratio = "—" if a["ratio"] is None else f"{a['ratio']:.2f}"
        rows = "".join(
            f"<tr><td>{html.escape(', '.join(format_value(v) for v in c['concepts'].values()))}</td>"
            f"<td>{html.escape(', '.join(f'{k} {n}' for k, n in sorted(c['counts'].items())))}</td>"
            f"<td>{'—' if c['ratio'] is None else format(c['ratio'], '.2f')}</td></tr>" for c in a["by_cell"])
        bias = (f"<h2>Bias measure</h2><p>Zero-shot CLIP attribute of every image; {html.escape(a['measure'])} ratio over all "
                f"images: {ratio} ({html.escape(', '.join(f'{k} {n}' for k, n in sorted(a['counts'].items())))}).</p>"
                f"<table id='bias'><thead><tr><th>cell</th><th>images by attribute</th><th>ratio</th></tr></thead><tbody>{rows}</tbody></table>")
    header = ("<thead><tr><th>fade</th><th>#</th><th>cell</th><th>concepts</th><th title='failure rate on the whole held-out set estimated from the records (shrinkage model), 95% interval'>estimated rate [95%]</th><th>observed rate</th><th>visits</th>"
              "<th>mean Q</th><th>true rate</th><th>minimal description</th></tr></thead>")
    observed_rows = _mode_rows(data["modes"], 0, show_ranks=True)
    policy_rows = _mode_rows(data["policy_modes"], len(data["modes"]))
    policy_table = "" if not data["policy_modes"] else f"""
<h3>By the policy (highest mean Q over the held-out samples)</h3>
<table id="policy-modes">{header}<tbody>{policy_rows}</tbody></table>"""
    family = _family_section(data["family"]) if data["family"] else ""
    corruptions = corruption_section(data["corruptions"]) if data["corruptions"] else ""
    payload = json.dumps(data, allow_nan=False, default=_finite).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fadejax report — {html.escape(data['run'])}</title>
<style>{_STYLE}</style><script>{plotly_js}</script></head>
<body>
<h1>Failure landscape of {html.escape(data['run'])}</h1>
<p>{c['queries']} queries, {c['failures']} failures ({c['failures'] / max(c['queries'], 1):.1%}); entropy of failures over cells
{c['entropy']:.2f} nats; {c['cells_visited']} cells visited; {c['iterations']} of {c['planned']} iterations. Size: confidence (1/std of P(a|s); visits where no policy is available).
Click a point to see the failures behind it.{sliced}</p>
<ul class="notes">{notes}</ul>
<div class="row"><div><div id="landscape"></div>
<label>Colour: <select id="colour-by"></select></label>
<label>Barycenter (eq. 11) around the highest-mass cell: <select id="radius"></select></label></div>
<div id="failures"><p class="muted">Click a point of the landscape.</p></div></div>
<h2>Failure modes</h2>
<p class="muted">"True rate": the cell re-evaluated on every held-out sample. "Minimal description": axes whose
reset to a neutral value does not lower the true failure rate by the margin are not needed (after PRIME).</p>
<h3>By estimated failure rate (every recorded query, shrinkage model; 95% interval)</h3>
<table id="modes">{header}<tbody>{observed_rows}</tbody></table>{policy_table}
<p><button id="export-button">Export marked modes (modes.json)</button></p>
{bias}
{corruptions}
{family}
<pre id="export"></pre>
<script type="application/json" id="fadejax-data">{payload}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


def write_report(summary: RunSummaryData, out_dir) -> dict[str, str]:
    """Write ``report.html``, ``summary.json`` (every figure's numbers), ``landscape.csv``
    (one row per point of the view), ``cells.csv`` (one row per visited cell) and, for a
    space of common corruptions, ``corruptions.csv`` (error per corruption and severity)."""
    import csv
    from pathlib import Path

    from plotly.offline import get_plotlyjs

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.html").write_text(render(summary, get_plotlyjs()))
    data = report_data(summary)
    for point in data["points"]:
        point.pop("examples")  # images stay in the HTML; the JSON keeps the numbers
    (out / "summary.json").write_text(json.dumps(data, indent=1, default=_finite))
    number = lambda v, fmt: "" if v is None else format(v, fmt)  # noqa: E731
    with open(out / "landscape.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*data["axes"], "cell", "pooled_cells", "visits", "failures", "observed_rate", "mean_p", "confidence", "true_rate"])
        for p in data["points"]:
            writer.writerow([*p["values"], "" if p["cell"] is None else p["cell"], p["pooled"], p["visits"], p["failures"],
                             number(p["rate"], ".6f"), number(p["mean_p"], ".6g"), number(p["confidence"], ".6g"), number(p["truth"], ".6f")])
    space = summary.config.concept_space()
    with open(out / "cells.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["cell", *space.names, "visits", "failures", "observed_rate"])
        coords = np.unravel_index(summary.cells, space.sizes)
        for j, cell in enumerate(summary.cells):
            values = [space.axes[a].values[int(coords[a][j])] for a in range(space.num_axes)]
            writer.writerow([int(cell), *values, int(summary.cell_visits[j]), int(summary.cell_failures[j]),
                             f"{summary.cell_failures[j] / summary.cell_visits[j]:.6f}"])
    written = {"html": str(out / "report.html"), "json": str(out / "summary.json"), "csv": str(out / "landscape.csv"), "cells": str(out / "cells.csv")}
    if data["corruptions"]:
        write_corruptions_csv(data["corruptions"], out / "corruptions.csv")
        written["corruptions"] = str(out / "corruptions.csv")
    return written
