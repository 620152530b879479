"""Static figures of the report for papers (matplotlib, PNG and PDF)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from fadejax.core.landscapes import on_grid, view
from fadejax.stages.report import points_3d
from fadejax.core.spaces import format_value
from fadejax.stages.summarize import RunSummaryData


def heatmap_grid(ax, grid: np.ndarray, space, axes: Sequence[int], **imshow):
    """Draw a view ``grid`` ``(sizes[axes[0]], sizes[axes[1]])`` (or 1-D) with the axis values as
    tick labels; returns the image for a colour bar."""
    grid = np.asarray(grid, np.float64)
    im = ax.imshow(grid.reshape(grid.shape[0], -1).T, origin="lower", cmap="viridis", aspect="auto", **imshow)
    ax.set_xticks(range(space.sizes[axes[0]]), [format_value(v) for v in space.axes[axes[0]].values], rotation=30 if not _numeric(space, axes[0]) else 0)
    ax.set_xlabel(space.names[axes[0]])
    if len(axes) > 1:
        ax.set_yticks(range(space.sizes[axes[1]]), [format_value(v) for v in space.axes[axes[1]].values])
        ax.set_ylabel(space.names[axes[1]])
    return im


def heatmap(ax, values, space, axes: Sequence[int], fixed: dict[int, int] | None = None, **imshow):
    """Draw dense per-cell ``values`` ``(num_actions,)`` on one or two grid ``axes`` (others
    sliced at ``fixed`` or averaged); returns the image for a colour bar."""
    grid = np.asarray(view(on_grid(jnp.asarray(values, jnp.float32), space.sizes), keep=list(axes), fixed=fixed))
    return heatmap_grid(ax, grid, space, axes, **imshow)


def _numeric(space, axis: int) -> bool:
    return all(isinstance(v, (int, float)) for v in space.axes[axis].values)


def _axis_positions(space, axis: int) -> np.ndarray:
    """Plot coordinates of an axis' values: the values themselves if numeric, else their indices."""
    values = space.axes[axis].values
    return np.asarray(values, np.float64) if _numeric(space, axis) else np.arange(len(values), dtype=np.float64)


def _two_axis_layers(summary: RunSummaryData) -> list[tuple[str, np.ndarray]]:
    """The policy, observed and true landscapes on the view's first two axes (third pooled)."""
    layers = []
    extra = tuple(range(2, len(summary.keep)))
    if summary.view_policy_mean is not None:
        layers.append(("P(a|s) (eq. 10)", summary.view_policy_mean.sum(axis=extra) if extra else summary.view_policy_mean))
    visits = summary.view_visits.sum(axis=extra) if extra else summary.view_visits
    failures = summary.view_failures.sum(axis=extra) if extra else summary.view_failures
    with np.errstate(invalid="ignore", divide="ignore"):
        layers.append(("observed failure rate", np.where(visits > 0, failures / np.maximum(visits, 1), np.nan)))
    if summary.view_truth is not None:
        layers.append(("true failure rate", summary.view_truth.mean(axis=extra) if extra else summary.view_truth))
    return layers


def write_figures(summary: RunSummaryData, out_dir) -> list[str]:
    """``landscape.{png,pdf}`` (3-D scatter of the view, colour = estimated failure rate, else P(a|s) or the observed rate,
    size = confidence), ``landscapes_side_by_side.{png,pdf}`` (policy, observed and true
    landscapes as heat maps of the view's first two axes, the third pooled) and
    ``modes.{png,pdf}`` (top failure modes with observed and true rates)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    space = summary.config.concept_space()
    keep = summary.keep
    names = [space.names[a] for a in keep]
    points = points_3d(summary)
    by_estimate = any(p["estimate"] is not None for p in points)  # the estimated rate first, as in the HTML report
    colour = np.asarray([(p["estimate"] or 0.0) if by_estimate else (p["mean_p"] if p["mean_p"] is not None else (p["rate"] or 0.0))
                         for p in points])
    raw = np.asarray([p["confidence"] if p["confidence"] is not None else p["visits"] for p in points], float)
    size = 15 + 150 * (raw - raw.min()) / (np.ptp(raw) or 1.0)
    positions = [_axis_positions(space, a) for a in keep]
    xyz = [np.asarray([positions[i][p["key"][i]] if i < len(keep) else 0.0 for p in points]) for i in range(3)]
    written = []

    fig = plt.figure(figsize=(7, 6))
    ax = fig.add_subplot(projection="3d")
    sc = ax.scatter(*xyz, c=colour, s=size, cmap="viridis", depthshade=False)
    if summary.barycenters:
        b = summary.barycenters[min(summary.barycenters)]
        bv = [float(np.interp(c, np.arange(space.sizes[a]), _axis_positions(space, a))) for c, a in zip(b, keep)] + [0.0] * (3 - len(keep))
        ax.scatter(*[[v] for v in bv], marker="D", s=120, c="#e4572e", edgecolors="k", label="barycenter (r=1)")
        ax.legend(loc="upper left")
    for setter, name in zip((ax.set_xlabel, ax.set_ylabel, ax.set_zlabel), names + ["", "", ""]):
        setter(name)
    label = "estimated failure rate" if by_estimate else ("P(a|s)" if summary.view_policy_mean is not None else "observed failure rate")
    fig.colorbar(sc, ax=ax, shrink=0.6, label=label)
    ax.set_title("Failure landscape (size = confidence)")
    for suffix in ("png", "pdf"):
        fig.savefig(out / f"landscape.{suffix}", dpi=130, bbox_inches="tight")
        written.append(str(out / f"landscape.{suffix}"))
    plt.close(fig)

    if len(keep) >= 2:
        layers = _two_axis_layers(summary)
        fig, axs = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 3.6), squeeze=False)
        for ax, (title, grid) in zip(axs[0], layers):
            im = heatmap_grid(ax, grid, space, keep[:2])
            ax.set_title(title, fontsize=10)
            fig.colorbar(im, ax=ax, shrink=0.8)
        fig.suptitle("Landscapes side by side" + (f" ({space.names[keep[2]]} pooled)" if len(keep) > 2 else ""))
        fig.tight_layout()
        for suffix in ("png", "pdf"):
            fig.savefig(out / f"landscapes_side_by_side.{suffix}", dpi=130, bbox_inches="tight")
            written.append(str(out / f"landscapes_side_by_side.{suffix}"))
        plt.close(fig)

    if summary.modes:
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(summary.modes) + 1.2))
        labels = [", ".join(f"{k}={format_value(v)}" for k, v in m["concepts"].items()) for m in summary.modes][::-1]
        observed = [m["failure_rate"] or 0.0 for m in summary.modes][::-1]
        y = np.arange(len(labels))
        ax.barh(y - 0.2, observed, height=0.4, label="observed")
        if all(m["true_rate"] is not None for m in summary.modes):
            ax.barh(y + 0.2, [m["true_rate"] for m in summary.modes][::-1], height=0.4, label="true (re-evaluated)")
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


def landscape_image(grid: np.ndarray, space, axes: Sequence[int], title: str, label: str = "P(a|s), other axes summed") -> np.ndarray:
    """A view ``grid`` (see :func:`heatmap_grid`) drawn with its axis values and a colour
    bar, as an ``(H, W, 3)`` uint8 picture (for TensorBoard and W&B). Uses no pyplot state,
    so any thread may call it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    words = not _numeric(space, axes[0])
    bottom = 0.32 if words else 0.15  # room for word values, turned on their side
    figure = Figure(figsize=(5.0, 3.8), dpi=80)
    canvas = FigureCanvasAgg(figure)
    ax = figure.add_axes((0.15, bottom, 0.6, 0.9 - bottom))  # fixed places: tight_layout would double the cost
    image = heatmap_grid(ax, grid, space, axes)
    if words:
        for text in ax.get_xticklabels():
            text.set(rotation=60, ha="right", rotation_mode="anchor", fontsize=8)
    if len(axes) == 1:
        ax.set_yticks([])
    figure.colorbar(image, cax=figure.add_axes((0.78, bottom, 0.035, 0.9 - bottom)), label=label)
    ax.set_title(title)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
