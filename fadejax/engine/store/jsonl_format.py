"""Records as JSON lines: the bytes of ``records.jsonl``, from columns.

One line per query: ``iteration, env, sample, action, cell, concepts {axis: value},
reward, failed``, then ``reused`` and ``drawn`` where the run has them, then the task's own
fields in alphabetical order (e.g. ``label, predicted, score`` for a classifier; BLEU,
summary and edited text for a summarizer), then ``step, done`` in microscopic mode. An
integer field with class names (a task's ``record_names``) is followed by ``FIELD_name``.

The JSON-lines writer (:class:`fadejax.engine.store.records.RecordWriter`) and the export
of a columnar run (``fadejax export``) both write through :class:`JsonlFormat`, so the two
give the same bytes for the same queries.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa

from fadejax.core.spaces import ConceptSpace
from fadejax.engine.store.json_columns import joined_lines, json_scalar, json_texts
from fadejax.engine.store.record_fields import DRAWN, REUSED, task_fields

_CONCEPT_CACHE_SIZE = 1 << 16
#: What a record field may be called: its name is written into each line as it is.
_SAFE_NAME = re.compile(r"^[\w.\-]+$")


def _canonical(text: str) -> bool:
    """Whether ``text`` is one JSON scalar, exactly as :func:`json_scalar` writes its value."""
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, (str, int, float, bool)) and json_scalar(value) == text


def safe_field_name(name: str) -> bool:
    """Whether ``name`` can be a record field (written into JSON lines as it is)."""
    return bool(_SAFE_NAME.match(name))


class JsonlFormat:
    """The JSON-lines form of one run's records.

    Args:
      axis_names: each concept axis's name as JSON text (``'"rotation"'``).
      axis_values: each axis's values as JSON texts (``["0", "15.0", ...]``), in the space's order.
      mode: ``"macro"`` or ``"micro"`` (micro lines end with ``step, done``).
      named: integer field -> its class names as JSON texts (``label`` -> ``['"0"', ...]``).
    """

    def __init__(self, axis_names: Sequence[str], axis_values: Sequence[Sequence[str]], mode: str,
                 named: Mapping[str, Sequence[str]] | None = None):
        self.axis_names = list(axis_names)
        self.axis_values = [list(v) for v in axis_values]
        self.mode = mode
        self.named = {field: list(texts) for field, texts in (named or {}).items()}
        self._named_arrays = {field: np.asarray(texts, dtype=object) for field, texts in self.named.items()}
        self.sizes = tuple(len(v) for v in self.axis_values)
        self.num_actions = math.prod(self.sizes)
        self._concept_cache: dict[int, str] = {}
        self._concept_table: pa.Array | None = None

    @classmethod
    def of_space(cls, space: ConceptSpace, mode: str, names: Mapping[str, Sequence[Any]] | None = None) -> "JsonlFormat":
        """The format of a run over ``space``; ``names``: field -> class names (a task's ``record_names``)."""
        return cls([json.dumps(n) for n in space.names], [[json_scalar(v) for v in a.values] for a in space.axes], mode,
                   {field: [json.dumps(str(n)) for n in labels] for field, labels in (names or {}).items()})

    def description(self) -> dict[str, Any]:
        """Everything the format needs, as plain JSON (kept in a columnar file's schema)."""
        return {"mode": self.mode, "axes": [[n, v] for n, v in zip(self.axis_names, self.axis_values)], "names": self.named}

    @classmethod
    def from_description(cls, description: Any) -> "JsonlFormat":
        """The format :meth:`description` describes; ``ValueError`` naming what is wrong."""
        if not isinstance(description, dict) or description.get("mode") not in ("macro", "micro"):
            raise ValueError("it does not say whether the run is macro or micro")
        axes, named = description.get("axes"), description.get("names", {})
        if not isinstance(axes, list) or not axes or not all(
                isinstance(a, list) and len(a) == 2 and isinstance(a[0], str) and isinstance(a[1], list) and a[1]
                and all(isinstance(v, str) for v in a[1]) for a in axes):
            raise ValueError("its concept axes are not a list of [name, [values]] texts")
        if not isinstance(named, dict) or not all(isinstance(v, list) and all(isinstance(t, str) for t in v) for v in named.values()):
            raise ValueError("its class names are not lists of texts")
        # each text goes into the lines as it is: it must be one JSON value, written as fadejax writes it
        texts = [a[0] for a in axes] + [t for a in axes for t in a[1]] + [t for v in named.values() for t in v]
        if not all(_canonical(t) for t in texts) or not all(_SAFE_NAME.match(k) for k in named):
            raise ValueError("its axis values or class names are not JSON texts as fadejax writes them")
        return cls([a[0] for a in axes], [a[1] for a in axes], description["mode"], named)

    def lines(self, outcome: Mapping[str, Any], iterations: str | pa.Array, envs: pa.Array) -> memoryview:
        """The JSON-lines bytes of ``B`` queries whose fields (``(B,)`` arrays, or lists for
        texts) are in ``outcome``; ``iterations``: their iteration numbers as JSON texts (one
        text for all, or a length-``B`` array), ``envs`` likewise their environments."""
        cells = np.asarray(outcome["cell"])
        # Column by column, then the columns joined into lines by Arrow (fadejax.engine.store.json_columns):
        # no Python string per value or per line.
        parts: list[str | pa.Array] = [
            '{"iteration": ', iterations, ', "env": ', envs, ', "sample": ', json_texts(outcome["sample"]),
            ', "action": ', json_texts(outcome["action"]), ', "cell": ', json_texts(cells), ', "concepts": {', self._concepts(cells),
            '}, "reward": ', json_texts(outcome["reward"]), ', "failed": ', json_texts(outcome["failed"]),
        ]
        if REUSED in outcome:
            parts += [f', "{REUSED}": ', json_texts(np.asarray(outcome[REUSED], bool))]
        if DRAWN in outcome:
            parts += [f', "{DRAWN}": ', json_texts(np.asarray(outcome[DRAWN], bool))]
        for k in task_fields(outcome):
            parts += [f', "{k}": ', json_texts(outcome[k])]
            if k in self._named_arrays:
                parts += [f', "{k}_name": ', pa.array(self._named_arrays[k][np.asarray(outcome[k], np.int64)], pa.string())]
        if self.mode == "micro":
            parts += [', "step": ', json_texts(np.asarray(outcome["step"]).astype(np.int64)),
                      ', "done": ', json_texts(np.asarray(outcome["done"]).astype(bool))]
        return joined_lines(parts + ["}\n"])

    def _concepts(self, cells: np.ndarray) -> pa.Array:
        """The ``concepts`` object's inside for each cell, ``axis: value, ...``: taken from a
        table of every cell's where the space has at most ``_CONCEPT_CACHE_SIZE`` cells,
        else from a cache of the cells seen (million-action spaces: memory kept bounded)."""
        if self.num_actions <= _CONCEPT_CACHE_SIZE:
            if self._concept_table is None:
                self._concept_table = pa.array(self._concept_texts(np.arange(self.num_actions)), pa.string())
            return self._concept_table.take(pa.array(cells.astype(np.int64)))
        missing = np.asarray([c for c in set(cells.tolist()) if c not in self._concept_cache], np.int64)
        if missing.size:
            self._concept_cache.update(zip(missing.tolist(), self._concept_texts(missing)))
            if len(self._concept_cache) > _CONCEPT_CACHE_SIZE:
                self._concept_cache = {c: self._concept_cache[c] for c in set(cells.tolist())}
        return pa.array([self._concept_cache[c] for c in cells.tolist()], pa.string())

    def _concept_texts(self, cells: np.ndarray) -> list[str]:
        per_axis = np.unravel_index(cells, self.sizes)  # row-major, as ConceptSpace numbers cells
        return [", ".join(f"{n}: {self.axis_values[i][per_axis[i][j]]}" for i, n in enumerate(self.axis_names)) for j in range(cells.shape[0])]
