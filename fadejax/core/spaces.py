"""Concept spaces: named axes of ordered values, and the action spaces built on them.

An *axis* is one concept (rotation, darkness, a profession, ...) with a few ordered
values. A *cell* is one value index per axis, shape ``(num_axes,)`` int32. Two action
spaces are built on the axes:

* :class:`ConceptSpace` (macroscopic): every combination of axis values is one action,
  numbered in row-major (C) order, so the *last* axis varies fastest.
* :class:`MicroSpace` (microscopic): ``2 * num_axes`` incremental actions; action
  ``2*i`` moves axis ``i`` one notch down and ``2*i + 1`` one notch up, clipped at the
  axis ends, starting from a chosen cell.

All index conversions are pure ``jax.numpy`` functions over arbitrary leading batch
dimensions, so they jit and vmap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import jax.numpy as jnp
import numpy as np

MAX_ACTIONS = np.iinfo(np.int32).max


def format_value(value: float | str) -> str:
    """A concept value as text: numbers compactly (``-20``, ``0.7``), words as they are."""
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


class SpaceError(ValueError):
    """A concept space was specified wrongly."""


@dataclass(frozen=True)
class Axis:
    """One concept axis: a name and its ordered values (at least two, all distinct).

    Values are numbers (a rotation in degrees, a count of text edits) or words (a text
    edit's name, a profession); a word axis is *categorical* and its value table holds
    the value's index instead of the value.
    """

    name: str
    values: tuple[float | str, ...]

    def __post_init__(self) -> None:
        if not self.name:
            raise SpaceError("an axis needs a non-empty name")
        if len(self.values) < 2:
            raise SpaceError(
                f"axis '{self.name}' has {len(self.values)} value(s); an axis needs at least 2"
            )
        if len(set(self.values)) != len(self.values):
            raise SpaceError(f"axis '{self.name}' repeats a value: {list(self.values)}")

    @property
    def size(self) -> int:
        return len(self.values)

    @property
    def categorical(self) -> bool:
        """True when the values are words, not numbers."""
        return any(isinstance(v, str) for v in self.values)


class ConceptSpace:
    """The macroscopic action space: the product of the axes, one action per cell.

    Args:
      axes: the concept axes, in the order actions are numbered (last varies fastest).
    """

    def __init__(self, axes: Sequence[Axis]):
        axes = tuple(axes)
        if not axes:
            raise SpaceError("a concept space needs at least one axis")
        names = [a.name for a in axes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SpaceError(f"axis names must be unique; repeated: {duplicates}")
        self.axes = axes
        self.names: tuple[str, ...] = tuple(names)
        self.sizes: tuple[int, ...] = tuple(a.size for a in axes)
        self.num_axes = len(axes)
        self.num_actions = math.prod(self.sizes)
        if self.num_actions > MAX_ACTIONS:
            raise SpaceError(
                f"the space has {self.num_actions} actions; at most {MAX_ACTIONS} fit an int32 index"
            )
        # Row-major strides: stride[i] = prod(sizes[i+1:]).
        strides = np.ones(self.num_axes, dtype=np.int64)
        for i in range(self.num_axes - 2, -1, -1):
            strides[i] = strides[i + 1] * self.sizes[i + 1]
        self._host_strides, self._host_sizes = strides, np.asarray(self.sizes, np.int64)
        self._strides = jnp.asarray(strides, dtype=jnp.int32)
        self._sizes = jnp.asarray(self.sizes, dtype=jnp.int32)
        # Values padded to a (num_axes, max_size) table so decode is one gather; a
        # categorical axis contributes the index of each word.
        table = np.zeros((self.num_axes, max(self.sizes)), dtype=np.float32)
        for i, axis in enumerate(axes):
            table[i, : axis.size] = np.arange(axis.size) if axis.categorical else axis.values
        self._value_table = jnp.asarray(table)

    def __repr__(self) -> str:
        dims = " x ".join(f"{a.name}[{a.size}]" for a in self.axes)
        return f"ConceptSpace({dims} = {self.num_actions} actions)"

    # -- action <-> cell ------------------------------------------------------------
    def cell_of(self, action: jnp.ndarray) -> jnp.ndarray:
        """Action index ``(...,)`` -> cell ``(..., num_axes)`` int32 (value index per axis)."""
        action = jnp.asarray(action, dtype=jnp.int32)
        return (action[..., None] // self._strides) % self._sizes

    def action_of(self, cell: jnp.ndarray) -> jnp.ndarray:
        """Cell ``(..., num_axes)`` -> action index ``(...,)`` int32."""
        cell = jnp.asarray(cell, dtype=jnp.int32)
        return jnp.sum(cell * self._strides, axis=-1)

    def host_cell_of(self, action: int) -> np.ndarray:
        """:meth:`cell_of` of one action on the host (numpy, no device call): ``(num_axes,)`` int32."""
        return (int(action) // self._host_strides % self._host_sizes).astype(np.int32)

    def host_action_of(self, cell: np.ndarray) -> int:
        """:meth:`action_of` of one cell ``(num_axes,)`` on the host (numpy, no device call)."""
        return int(np.dot(np.asarray(cell, np.int64), self._host_strides))

    def values_of_cell(self, cell: jnp.ndarray) -> jnp.ndarray:
        """Cell ``(..., num_axes)`` -> concept values ``(..., num_axes)`` float32 (a categorical axis gives the value's index)."""
        cell = jnp.asarray(cell, dtype=jnp.int32)
        return self._value_table[jnp.arange(self.num_axes), cell]

    def decode(self, action: jnp.ndarray) -> jnp.ndarray:
        """Action index ``(...,)`` -> concept values ``(..., num_axes)`` float32."""
        return self.values_of_cell(self.cell_of(action))

    def cell_of_values(self, values: jnp.ndarray) -> jnp.ndarray:
        """Concept values ``(..., num_axes)`` -> cell, matching each to the nearest axis value."""
        values = jnp.asarray(values, dtype=jnp.float32)
        distance = jnp.abs(values[..., None] - self._value_table)  # (..., axes, max_size)
        valid = jnp.arange(self._value_table.shape[1]) < self._sizes[:, None]
        distance = jnp.where(valid, distance, jnp.inf)
        return jnp.argmin(distance, axis=-1).astype(jnp.int32)

    def encode(self, values: jnp.ndarray) -> jnp.ndarray:
        """Concept values ``(..., num_axes)`` -> action index ``(...,)`` int32."""
        return self.action_of(self.cell_of_values(values))

    def normalized_cell(self, cell: jnp.ndarray) -> jnp.ndarray:
        """Cell -> position in ``[0, 1]`` per axis, ``(..., num_axes)`` float32 (for observations)."""
        return jnp.asarray(cell, jnp.float32) / (self._sizes - 1).astype(jnp.float32)

    def describe(self, action: int) -> dict[str, float | str]:
        """Host-side: ``{axis name: value}`` of one action, for reports and records."""
        if not 0 <= int(action) < self.num_actions:
            raise SpaceError(f"action {action} is outside 0..{self.num_actions - 1}")
        cell = self.host_cell_of(action)
        return {a.name: a.values[int(i)] for a, i in zip(self.axes, cell)}


class MicroSpace:
    """The microscopic action space: move one axis one notch, bounded, from a start cell.

    Args:
      space: the concept space whose cells the episode walks through.
      start: the start cell, one value index per axis (default: all zeros, the origin).
    """

    def __init__(self, space: ConceptSpace, start: Sequence[int] | None = None):
        start = tuple(0 for _ in space.axes) if start is None else tuple(int(s) for s in start)
        if len(start) != space.num_axes:
            raise SpaceError(
                f"micro start has {len(start)} entries; the space has {space.num_axes} axes {list(space.names)}"
            )
        for axis, s in zip(space.axes, start):
            if not 0 <= s < axis.size:
                raise SpaceError(
                    f"micro start index {s} for axis '{axis.name}' is outside 0..{axis.size - 1}"
                )
        self.space = space
        self.start = start
        self.num_actions = 2 * space.num_axes
        self._start = jnp.asarray(start, dtype=jnp.int32)

    def start_cells(self, batch: int) -> jnp.ndarray:
        """The start cell repeated ``(batch, num_axes)``."""
        return jnp.broadcast_to(self._start, (batch, self.space.num_axes))

    def move(self, cell: jnp.ndarray, action: jnp.ndarray) -> jnp.ndarray:
        """Apply moves ``(...,)`` to cells ``(..., num_axes)``; result clipped to each axis."""
        action = jnp.asarray(action, dtype=jnp.int32)
        axis = action // 2
        step = jnp.where(action % 2 == 1, 1, -1)
        delta = jnp.where(jnp.arange(self.space.num_axes) == axis[..., None], step[..., None], 0)
        return jnp.clip(cell + delta, 0, self.space._sizes - 1)

    def describe(self, action: int) -> str:
        """Host-side: a move as text, e.g. ``'rotation +1'``."""
        if not 0 <= int(action) < self.num_actions:
            raise SpaceError(f"micro action {action} is outside 0..{self.num_actions - 1}")
        return f"{self.space.names[int(action) // 2]} {'+1' if int(action) % 2 else '-1'}"
