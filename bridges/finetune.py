"""Entry point of the fine-tuning process: ``python -m bridges.finetune SPEC.json``."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

#: fine-tuner kind -> module with ``run(spec) -> metrics``; the spec models are named by the audits (fadejax.stages.finetune.spec_kinds).
RUNNERS: dict[str, str] = {
    "classifier": "bridges.finetune_classifier",
    "seq2seq": "bridges.finetune_seq2seq",
    "lora": "bridges.finetune_lora",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m bridges.finetune SPEC.json", file=sys.stderr)
        return 2
    from fadejax.stages.finetune import FineTuneError, validate_spec

    try:
        spec = validate_spec(json.loads(Path(argv[0]).read_text()))
    except (OSError, ValueError, FineTuneError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    importlib.import_module(RUNNERS[spec.kind]).run(spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
