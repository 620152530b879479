"""The fade report (``OUT/fade_report.{json,md,html}``) and the comparison of fades.

Per round: the worst and mean estimated failure rate with their 95% intervals, the
exhaustive worst and mean where the audit computed landscapes, the clean figure, the modes
faded and the fine-tune budget; the stopping reason; for the final model the Wasserstein
shift by radius around each faded mode (the paper's Table 2, from its shift report). The
HTML page draws the curves over rounds with plotly, inlined so that it opens offline, and
shows each round's exhaustive landscapes before and after;
:func:`compare_fades` draws several fades' curves (a fade beside its baselines) on one page.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Sequence

from fadejax.core.spaces import format_value
from fadejax.engine.store.rundir import write_json_atomic, write_text_atomic

REPORT = "fade_report"
#: curves over rounds: (ledger key, sub-key, title)
CURVES = [("worst", "estimate", "worst mode's estimated failure rate"), ("mean", "estimate", "mean estimated failure rate"),
          ("clean", None, "clean held-out figure")]
_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def label(ledger: dict[str, Any]) -> str:
    """``fade``, ``fade (modes)`` (its ``--data``, where given) or ``baseline: uniform`` etc."""
    baseline = ledger["settings"].get("baseline")
    data = ledger["settings"].get("data")
    return f"baseline: {baseline}" if baseline else f"fade ({data})" if data else "fade"


def summary(out: Path, ledger: dict[str, Any]) -> dict[str, Any]:
    """The report's JSON: the ledger's rounds and outcome, and the final shift by radius."""
    final = ledger.get("final") or {}
    shift = None
    kept = [e for e in ledger["rounds"] if e["status"] == "kept"]
    if kept and kept[-1]["shift_report"] and Path(kept[-1]["shift_report"]).is_file():
        report = json.loads(Path(kept[-1]["shift_report"]).read_text())
        shift = [{"cell": m["cell"], "concepts": m.get("concepts"), "before": m.get("held_out_failure_rate_before"),
                  "after": m.get("held_out_failure_rate_after"), "wasserstein_by_radius": m.get("wasserstein_by_radius")}
                 for m in report.get("modes", [])]
    return {"fade": str(out), "label": label(ledger), "task": ledger["task"], "settings": ledger["settings"],
            "original_clean": ledger["original_clean"], "stopped": ledger["stopped"], "final": final,
            "rounds": [{k: v for k, v in e.items() if k not in ("ranked", "rates")} for e in ledger["rounds"]], "final_shift": shift}


def write_report(out: Path, ledger: dict[str, Any]) -> dict[str, Path]:
    """Write the three forms into ``out``; return their paths."""
    data = summary(out, ledger)
    paths = {"json": out / f"{REPORT}.json", "md": out / f"{REPORT}.md", "html": out / f"{REPORT}.html"}
    markdown = render_markdown(data)
    write_json_atomic(paths["json"], data)
    write_text_atomic(paths["md"], markdown)
    write_text_atomic(paths["html"], render_html([data], title=f"fadejax fade: {out}", rounds_table=markdown,
                                                 pictures=_landscape_pictures(data)))
    return paths


def _landscape_pictures(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``(caption, base64 PNG)`` of each round's exhaustive landscapes before and after, where the audit drew them."""
    import base64

    pictures = []
    for e in data["rounds"]:
        path = Path(e["shift_report"]).parent / "landscapes_before_after.png" if e.get("shift_report") else None
        if path is not None and path.is_file():
            caption = f"round {e['round']} ({e['status']}): held-out failure rates before (the original model) and after"
            pictures.append((caption, base64.b64encode(path.read_bytes()).decode()))
    return pictures


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def render_markdown(data: dict[str, Any]) -> str:
    """The report as Markdown: one row per round, then the outcome and the final shift."""
    clean = (data.get("original_clean") or {}).get("name", "clean figure")
    s = data["settings"]
    lines = [
        f"# Fade report: {data['fade']} ({data['label']})", "",
        f"Target {s['target']:.0%} worst-mode rate; guard {s['guard']:g} points of clean {clean}; {s['modes_per_round']} modes per "
        f"round, at most {s['rounds']} rounds; scope {s['scope'] or 'the audit default'}.", "",
        "Fine-tune data: `weighted` is every cell of the space, half drawn uniformly and half in proportion to the kept rounds' "
        "estimated failure rates; "
        "`modes` only the faded modes; `uniform` every cell alike; `random` clean examples.", "",
        "Estimates are over the held-out set from each round's discovery, with 95% intervals; `truth` is the exhaustive "
        "landscape where the audit computes one.", "",
        f"| round | modes faded | worst (estimate) | 95% interval | mean (estimate) | 95% interval | worst (truth) | mean (truth) | clean {clean} | fine-tune | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in data["rounds"]:
        truth = e.get("truth") or {}
        tune = e.get("fine_tune") or {}
        examples = (tune.get("examples") or {}).get("failure") if isinstance(tune.get("examples"), dict) else tune.get("examples")
        budget = "–" if not tune else f"{examples} ex. × {tune.get('epochs')} ep., {tune.get('scope') or 'default'}, {tune.get('data')}"
        w, m = e["worst"], e["mean"]
        lines.append(f"| {e['round']} | {len(e['modes_faded'])} | {_pct(w['estimate'])} | [{_pct(w['interval'][0])}, {_pct(w['interval'][1])}] "
                     f"| {_pct(m['estimate'])} | [{_pct(m['interval'][0])}, {_pct(m['interval'][1])}] | {_pct(truth.get('worst'))} "
                     f"| {_pct(truth.get('mean'))} | {_pct(e.get('clean'))} | {budget} | {e['status']} |")
    stopped = data.get("stopped") or {}
    final = data.get("final") or {}
    lines += ["", f"**Stopped after round {stopped.get('round')}: {stopped.get('reason')}.** {stopped.get('note', '')}", "",
              f"Final model: round {final.get('round')}; its config `{final.get('config')}`"
              + (f", weights `{final['weights']}`." if final.get("weights") else " (the original model: no round was kept).")]
    for e in data["rounds"]:
        if e["chosen"]:
            lines.append(f"- round {e['round']} added cells {', '.join(str(c) for c in e['chosen'])}")
    if data.get("final_shift"):
        lines += ["", "Wasserstein shift of the final model's landscape by radius around each faded mode (the paper's Table 2):", "",
                  "| cell | concepts | rate before | after | W1 by radius 1..R |", "|---|---|---|---|---|"]
        for m in data["final_shift"]:
            concepts = ", ".join(f"{k}={format_value(v)}" for k, v in (m.get("concepts") or {}).items())
            w = ", ".join(f"{x:.3f}" for x in (m.get("wasserstein_by_radius") or []))
            lines.append(f"| {m['cell']} | {concepts} | {_pct(m.get('before'))} | {_pct(m.get('after'))} | {w or '–'} |")
    pictures = [e for e in data["rounds"] if e.get("shift_report")]
    if pictures:
        lines += ["", "Exhaustive landscapes before and after each round: "
                  + ", ".join(f"`{Path(e['shift_report']).parent / 'landscapes_before_after.png'}`" for e in pictures)]
    return "\n".join(lines) + "\n"


def render_html(fades: Sequence[dict[str, Any]], title: str, rounds_table: str = "", pictures: Sequence[tuple[str, str]] = ()) -> str:
    """One page of curves over rounds, one line per fade (a fade and its baselines), the
    estimates with their 95% bands and the exhaustive figures dashed; then the table and
    ``pictures`` (``(caption, base64 PNG)``)."""
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=len(CURVES), subplot_titles=[t for _, _, t in CURVES])
    for i, data in enumerate(fades):
        colour = _COLOURS[i % len(_COLOURS)]
        rounds = data["rounds"]
        x = [e["round"] for e in rounds]
        for col, (key, sub, _) in enumerate(CURVES, start=1):
            if sub is None:
                y = [e.get(key) for e in rounds]
            else:
                y = [e[key][sub] for e in rounds]
                lower = [e[key]["interval"][0] for e in rounds]
                upper = [e[key]["interval"][1] for e in rounds]
                figure.add_scatter(x=x + x[::-1], y=upper + lower[::-1], fill="toself", line={"width": 0}, fillcolor=colour,
                                   opacity=0.15, hoverinfo="skip", showlegend=False, legendgroup=data["label"], row=1, col=col)
                truth = [(e.get("truth") or {}).get(key) for e in rounds]
                if any(t is not None for t in truth):
                    figure.add_scatter(x=x, y=truth, mode="lines+markers", line={"color": colour, "dash": "dash"},
                                       name=f"{data['label']} (exhaustive)", legendgroup=data["label"], showlegend=col == 1, row=1, col=col)
            status = [e["status"] for e in rounds]
            figure.add_scatter(x=x, y=y, mode="lines+markers", name=data["label"], legendgroup=data["label"], showlegend=col == 1,
                               line={"color": colour}, marker={"symbol": ["x" if s != "kept" else "circle" for s in status]},
                               text=status, row=1, col=col)
    figure.update_xaxes(title_text="round", dtick=1)
    figure.update_yaxes(tickformat=".0%")
    figure.update_layout(height=420, title={"text": title}, template="plotly_white", legend={"orientation": "h", "y": -0.2})
    body = figure.to_html(include_plotlyjs=True, full_html=False, div_id="fade-curves")
    table = f"<pre id='fade-table'>{html.escape(rounds_table)}</pre>" if rounds_table else ""
    figures = "".join(f"<figure class='landscape'><img alt='{html.escape(c)}' src='data:image/png;base64,{b}'><figcaption>{html.escape(c)}"
                      "</figcaption></figure>" for c, b in pictures)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}{table}{figures}</body></html>")


def read_fade(path: Path) -> dict[str, Any]:
    """A fade directory's report JSON; ``ValueError`` naming it if it has none."""
    report = Path(path) / f"{REPORT}.json"
    if not report.is_file():
        raise ValueError(f"'{path}' holds no finished fade ({REPORT}.json); finish it with the same fadejax fade command")
    try:
        return json.loads(report.read_bytes())
    except ValueError:
        raise ValueError(f"'{report}' is not a fade report fadejax wrote") from None


def compare_fades(dirs: Sequence[Path], out: Path) -> dict[str, Path]:
    """Several fades (e.g. a fade and its baselines at the same budget) side by side:
    ``compare.html`` (their curves over rounds) and ``compare.md`` (their final figures)."""
    fades = [read_fade(d) for d in dirs]
    tasks = {f["task"] for f in fades}
    if len(tasks) > 1:
        raise ValueError(f"the fades audit different tasks ({', '.join(sorted(tasks))}); compare fades of one config")
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Fades compared", "", "| fade | rounds | stopped | worst (estimate) | mean (estimate) | worst (truth) | mean (truth) | clean |",
             "|---|---|---|---|---|---|---|---|"]
    for f in fades:
        kept = [e for e in f["rounds"] if e["status"] == "kept"][-1]
        truth = kept.get("truth") or {}
        lines.append(f"| {f['label']} (`{f['fade']}`) | {len(f['rounds']) - 1} | {(f.get('stopped') or {}).get('reason')} "
                     f"| {_pct(kept['worst']['estimate'])} | {_pct(kept['mean']['estimate'])} | {_pct(truth.get('worst'))} "
                     f"| {_pct(truth.get('mean'))} | {_pct(kept.get('clean'))} |")
    markdown = "\n".join(lines) + "\n"
    paths = {"html": out / "compare.html", "md": out / "compare.md"}
    write_text_atomic(paths["md"], markdown)
    write_text_atomic(paths["html"], render_html(fades, title="fadejax compare: " + ", ".join(f["label"] for f in fades), rounds_table=markdown))
    return paths
