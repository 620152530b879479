"""The record writers side by side: columns (Arrow) against JSON lines, and the JSON-lines
writer's formatting against value-by-value Python formatting of the same lines.

    .venv/bin/python benchmarks/records_speed.py [--num-envs 256 2048] [--repeat 7] [--against OTHER_records.py]

First, for each batch size and mode, the host work per query of each writer's ``write`` of
an iteration (the run's writer, :class:`~fadejax.engine.store.records.ArrowRecordWriter`,
against :class:`~fadejax.engine.store.records.RecordWriter`'s JSON lines), in microseconds,
their ratio, the bytes each keeps per query and their ratio, and whether ``fadejax export
--format jsonl`` of the columns gives the JSON-lines writer's bytes. Then:

For each batch size and mode, times :meth:`fadejax.engine.store.records.RecordWriter.write` (columns
formatted and joined into lines by Arrow, ``fadejax.engine.store.json_columns``) against the plainest
writer of the same bytes: ``json_scalar`` on each value and one f-string per line, joined in
Python. The columns are a classifier audit's (``label, predicted, score`` with class names;
scores in the range of a max softmax, rewards ``-1`` or a log-odds), on the embedded
default's 125-cell space. Prints milliseconds per iteration's write (best of ``--repeat``
runs of 20 writes each), their ratio, and checks that both wrote the same bytes. Then the
background writer's way at small batches: ``--together`` iterations written in one pass
(:meth:`~fadejax.engine.store.records.RecordWriter.write_many`), milliseconds per iteration, checked
against writing them one by one.

``--against FILE``: also time the ``RecordWriter`` of another ``fadejax/engine/store/records.py`` (e.g. an
earlier commit's: ``git show COMMIT:fadejax/engine/store/records.py > /tmp/earlier_records.py``) on the
same columns, and check it writes the same bytes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from fadejax.engine.config import parse_config  # noqa: E402
from fadejax.engine.store.json_columns import json_scalar  # noqa: E402
from fadejax.engine.store.arrow_records import read_arrow_records  # noqa: E402
from fadejax.engine.store.records import ArrowRecordWriter, RecordWriter  # noqa: E402
from fadejax.core.spaces import ConceptSpace  # noqa: E402

NAMES = {"label": [str(d) for d in range(10)], "predicted": [str(d) for d in range(10)]}


def outcome(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    failed = rng.random(batch) < 0.3
    action = rng.integers(0, 125, batch).astype(np.int32)
    return {
        "action": action, "cell": action, "sample": rng.integers(0, 540, batch).astype(np.int32),
        "reward": np.where(failed, 3.0 * rng.random(batch), -1.0).astype(np.float32), "failed": failed,
        "label": rng.integers(0, 10, batch).astype(np.int32), "predicted": rng.integers(0, 10, batch).astype(np.int32),
        "score": rng.uniform(0.1, 1.0, batch).astype(np.float32),
        "step": rng.integers(1, 5, batch).astype(np.int32), "done": rng.random(batch) < 0.5,
    }


def concept_texts(space: ConceptSpace) -> list[str]:
    """Each cell's ``"axis": value, ...`` (computed once, as the writer does)."""
    per_axis = np.unravel_index(np.arange(space.num_actions), space.sizes)
    return [", ".join(f"{json.dumps(a.name)}: {json_scalar(a.values[per_axis[i][c]])}" for i, a in enumerate(space.axes))
            for c in range(space.num_actions)]


def plain_lines(writer: RecordWriter, concepts_of: list[str], iteration: int, out: dict[str, np.ndarray]) -> bytes:
    """The same lines, every value through ``json_scalar`` and every line an f-string."""
    lines = []
    for env in range(out["cell"].shape[0]):
        cell = int(out["cell"][env])
        concepts = concepts_of[cell]
        line = (f'{{"iteration": {iteration}, "env": {env}, "sample": {json_scalar(out["sample"][env])}, "action": {json_scalar(out["action"][env])}, '
                f'"cell": {cell}, "concepts": {{{concepts}}}, "reward": {json_scalar(out["reward"][env])}, "failed": {json_scalar(out["failed"][env])}')
        for k in ("label", "predicted", "score"):
            line += f', "{k}": {json_scalar(out[k][env])}'
            if k in NAMES:
                line += f', "{k}_name": {json_scalar(NAMES[k][int(out[k][env])])}'
        if writer.mode == "micro":
            line += f', "step": {json_scalar(out["step"][env])}, "done": {json_scalar(out["done"][env])}'
        lines.append(line + "}\n")
    return "".join(lines).encode()


def columns_against_lines(space: ConceptSpace, sizes: list[int], repeat: int) -> None:
    """The run's columnar writer against the JSON-lines writer, on the same iterations."""
    rng = np.random.default_rng(1)
    print(f"{'envs':>5} {'mode':>6} {'arrow us/q':>11} {'jsonl us/q':>11} {'jsonl / arrow':>14} {'arrow B/q':>10} {'jsonl B/q':>10} "
          f"{'size ratio':>11}  export = jsonl")
    for batch in sizes:
        for mode in ("macro", "micro"):
            iterations = [outcome(batch, rng) for _ in range(20)]
            with tempfile.TemporaryDirectory() as tmp:
                arrow = ArrowRecordWriter(Path(tmp) / "records.arrow", space, mode, names=NAMES)
                lines = RecordWriter(Path(tmp) / "records.jsonl", space, mode, names=NAMES)
                for i, o in enumerate(iterations):
                    arrow.write(i, o)
                    lines.write(i, o)
                same = bytes(read_arrow_records(Path(tmp) / "records.arrow").jsonl()) == (Path(tmp) / "records.jsonl").read_bytes()
                per_query = {}
                for name, writer in (("arrow", arrow), ("jsonl", lines)):
                    seconds = min(timeit.repeat(lambda: [writer.write(i, o) for i, o in enumerate(iterations)], number=1, repeat=repeat))
                    per_query[name] = seconds / (len(iterations) * batch) * 1e6
                arrow.close()
                lines.close()
                size = {name: (Path(tmp) / f"records.{name}").stat().st_size / ((repeat + 1) * len(iterations) * batch) for name in ("arrow", "jsonl")}
            print(f"{batch:>5} {mode:>6} {per_query['arrow']:>11.3f} {per_query['jsonl']:>11.3f} {per_query['jsonl'] / per_query['arrow']:>14.1f} "
                  f"{size['arrow']:>10.1f} {size['jsonl']:>10.1f} {size['jsonl'] / size['arrow']:>11.1f}  {same}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, nargs="+", default=[256, 2048])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--together", type=int, default=8, help="iterations per write_many pass (the background writer's 2,048 rows at 256 envs)")
    parser.add_argument("--against", type=Path, help="another records.py whose RecordWriter to time beside this one's")
    args = parser.parse_args()
    other = None
    if args.against is not None:
        spec = importlib.util.spec_from_file_location("other_records", args.against)
        other = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(other)
    space = parse_config({}).concept_space()
    columns_against_lines(space, args.num_envs, args.repeat)
    concepts_of = concept_texts(space)
    rng = np.random.default_rng(0)
    print(f"{'envs':>5} {'mode':>6} {'writer ms':>10} {'plain ms':>9} {'plain / writer':>15}  same bytes"
          + f"  {'together ms':>12} {'writer / together':>18}  same bytes"
          + (f"  {'other ms':>9} {'other / writer':>15}  same bytes" if other else ""))
    for batch in args.num_envs:
        for mode in ("macro", "micro"):
            out = outcome(batch, rng)
            with tempfile.TemporaryDirectory() as tmp:
                writer = RecordWriter(Path(tmp) / "records.jsonl", space, mode, names=NAMES)
                writer.write(0, out)  # the concept table is built on the first write
                written = writer.offset
                fast = min(timeit.repeat(lambda: writer.write(1, out), number=20, repeat=args.repeat)) / 20 * 1e3
                plain = min(timeit.repeat(lambda: plain_lines(writer, concepts_of, 1, out), number=20, repeat=args.repeat)) / 20 * 1e3
                writer.close()
                first = (Path(tmp) / "records.jsonl").read_bytes()[:written]
            same = first == plain_lines(writer, concepts_of, 0, out)
            line = f"{batch:>5} {mode:>6} {fast:>10.2f} {plain:>9.2f} {plain / fast:>15.1f}  {same!s:>10}"
            group = [(i, outcome(batch, rng)) for i in range(args.together)]
            with tempfile.TemporaryDirectory() as tmp:
                singly = RecordWriter(Path(tmp) / "singly.jsonl", space, mode, names=NAMES)
                together = RecordWriter(Path(tmp) / "together.jsonl", space, mode, names=NAMES)
                for i, o in group:
                    singly.write(i, o)
                together.write_many(group)
                agree_together = (Path(tmp) / "together.jsonl").read_bytes() == (Path(tmp) / "singly.jsonl").read_bytes()
                each = min(timeit.repeat(lambda: [singly.write(i, o) for i, o in group], number=5, repeat=args.repeat)) / (5 * len(group)) * 1e3
                pooled = min(timeit.repeat(lambda: together.write_many(group), number=5, repeat=args.repeat)) / (5 * len(group)) * 1e3
                singly.close()
                together.close()
            line += f"  {pooled:>12.2f} {each / pooled:>18.1f}  {agree_together!s:>10}"
            if other is not None:
                with tempfile.TemporaryDirectory() as tmp:
                    theirs = other.RecordWriter(Path(tmp) / "records.jsonl", space, mode, names=NAMES)
                    theirs.write(0, out)
                    slow = min(timeit.repeat(lambda: theirs.write(1, out), number=20, repeat=args.repeat)) / 20 * 1e3
                    theirs.close()
                    agree = (Path(tmp) / "records.jsonl").read_bytes()[:written] == first
                line += f"  {slow:>9.2f} {slow / fast:>15.1f}  {agree}"
            print(line)


if __name__ == "__main__":
    main()
