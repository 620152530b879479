"""Static figures of the report for papers (matplotlib, PNG and PDF)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from fadejax.landscapes import on_grid, view
from fadejax.report import points_3d
from fadejax.summarize import RunSummaryData


def heatmap(ax, values, space, axes: Sequence[int], fixed: dict[int, int] | None = None, **imshow):
    """Draw per-cell ``values`` on one or two grid ``axes`` (others sliced at ``fixed`` or
    averaged) with the axis values as tick labels; returns the image for a colour bar."""
    grid = np.asarray(view(on_grid(jnp.asarray(values, jnp.float32), space.sizes), keep=list(axes), fixed=fixed))
    im = ax.imshow(grid.reshape(grid.shape[0], -1).T, origin="lower", cmap="viridis", aspect="auto", **imshow)
    ax.set_xticks(range(space.sizes[axes[0]]), [f"{v:g}" for v in space.axes[axes[0]].values])
    ax.set_xlabel(space.names[axes[0]])
    if len(axes) > 1:
        ax.set_yticks(range(space.sizes[axes[1]]), [f"{v:g}" for v in space.axes[axes[1]].values])
        ax.set_ylabel(space.names[axes[1]])
    return im


def write_figures(summary: RunSummaryData, out_dir, keep: Sequence[int], fixed: dict[int, int] | None = None) -> list[str]:
    """``landscape.{png,pdf}`` (3-D scatter, colour = mean P or failure rate, size = confidence),
    ``landscapes_side_by_side.{png,pdf}`` (policy, observed and true landscapes as heat maps
    of the first two kept axes, the others marginalised) and ``modes.{png,pdf}`` (top failure
    modes with observed and true rates)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    space = summary.config.concept_space()
    names = [space.names[a] for a in keep]
    points = points_3d(summary, keep, fixed)
    colour = np.asarray([p["mean_p"] if p["mean_p"] is not None else (p["rate"] or 0.0) for p in points])
    raw = np.asarray([p["confidence"] if p["confidence"] is not None else p["visits"] for p in points], float)
    size = 15 + 150 * (raw - raw.min()) / (np.ptp(raw) or 1.0)
    xyz = [np.asarray([p["values"][i] if i < len(p["values"]) else 0.0 for p in points]) for i in range(3)]
    written = []

    fig = plt.figure(figsize=(7, 6))
    ax = fig.add_subplot(projection="3d")
    sc = ax.scatter(*xyz, c=colour, s=size, cmap="viridis", depthshade=False)
    if summary.barycenters:
        b = summary.barycenters[min(summary.barycenters)]
        axes = space.axes
        bv = [float(np.interp(b[a], np.arange(axes[a].size), axes[a].values)) for a in keep] + [0.0] * (3 - len(keep))
        ax.scatter(*[[v] for v in bv], marker="D", s=120, c="#e4572e", edgecolors="k", label="barycenter (r=1)")
        ax.legend(loc="upper left")
    for setter, name in zip((ax.set_xlabel, ax.set_ylabel, ax.set_zlabel), names + ["", "", ""]):
        setter(name)
    fig.colorbar(sc, ax=ax, shrink=0.6, label="mean P(a|s)" if summary.policy_mean is not None else "observed failure rate")
    ax.set_title("Failure landscape (size = confidence)")
    for suffix in ("png", "pdf"):
        fig.savefig(out / f"landscape.{suffix}", dpi=130, bbox_inches="tight")
        written.append(str(out / f"landscape.{suffix}"))
    plt.close(fig)

    layers = [("mean P(a|s) (eq. 10)", summary.policy_mean), ("observed failure rate", summary.rate), ("true failure rate", summary.truth)]
    layers = [(title, values) for title, values in layers if values is not None]
    pair = list(keep[:2]) if len(keep) >= 2 else [keep[0], keep[0]]
    if len(set(pair)) == 2:
        fig, axs = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 3.6), squeeze=False)
        for ax, (title, values) in zip(axs[0], layers):
            im = heatmap(ax, values, space, pair, fixed)
            ax.set_title(title, fontsize=10)
            fig.colorbar(im, ax=ax, shrink=0.8)
        fig.suptitle("Landscapes side by side (other axes averaged)")
        fig.tight_layout()
        for suffix in ("png", "pdf"):
            fig.savefig(out / f"landscapes_side_by_side.{suffix}", dpi=130, bbox_inches="tight")
            written.append(str(out / f"landscapes_side_by_side.{suffix}"))
        plt.close(fig)

    if summary.modes:
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(summary.modes) + 1.2))
        labels = [", ".join(f"{k}={v:g}" for k, v in m["concepts"].items()) for m in summary.modes][::-1]
        observed = [m["failure_rate"] for m in summary.modes][::-1]
        y = np.arange(len(labels))
        ax.barh(y - 0.2, observed, height=0.4, label="observed")
        if summary.truth is not None:
            ax.barh(y + 0.2, [m["true_rate"] for m in summary.modes][::-1], height=0.4, label="true (exhaustive)")
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_xlabel("failure rate")
        ax.set_xlim(0, 1)
        ax.legend(loc="lower right")
        ax.set_title("Top failure modes")
        for suffix in ("png", "pdf"):
            fig.savefig(out / f"modes.{suffix}", dpi=130, bbox_inches="tight")
            written.append(str(out / f"modes.{suffix}"))
        plt.close(fig)
    return written
