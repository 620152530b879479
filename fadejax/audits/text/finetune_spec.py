"""The seq2seq fine-tuner's spec (kind ``"seq2seq"``), validated in the engine without torch.

The run itself is ``bridges.finetune_seq2seq.run`` in its own process (see
:mod:`fadejax.stages.finetune`): the Hugging Face ``Seq2SeqTrainer`` on articles edited under the
chosen failure modes paired with their reference summaries (paper §4.2, Appendix D.2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pydantic


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class Seq2SeqHyper(_Strict):
    """The paper's settings (Appendix D.2): lr 2e-5, weight decay 1e-2, batch 2, 3 epochs.

    ``save_steps``: checkpoint every this many optimiser steps; ``None`` checkpoints at the
    end of every epoch. A relaunched run resumes from the newest complete checkpoint.

    ``scope``: ``full`` trains every weight (the paper's); ``lora`` trains low-rank
    adapters of rank ``lora_rank`` (scaling ``lora_alpha / lora_rank``) on the attention
    projections peft chooses for the architecture, merged into the saved model, which
    therefore loads like any other.
    """

    learning_rate: pydantic.PositiveFloat = 2e-5
    weight_decay: float = pydantic.Field(1e-2, ge=0.0, lt=1.0)
    batch_size: pydantic.PositiveInt = 2
    epochs: pydantic.PositiveInt = 3
    max_input_tokens: pydantic.PositiveInt = 512
    max_target_tokens: pydantic.PositiveInt = 128
    seed: int = 0
    save_steps: pydantic.PositiveInt | None = None
    scope: Literal["full", "lora"] = "full"
    lora_rank: pydantic.PositiveInt = 8
    lora_alpha: pydantic.PositiveFloat = 16.0


def check_pairs_file(path: str, field: str) -> int:
    """Number of rows of a .jsonl of ``{"article": str, "summary": str}``; ValueError names the bad line."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"{field} '{path}' does not exist")
    rows = 0
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{field} '{path}' line {number} is not JSON: {exc.msg}") from None
            if not isinstance(row, dict) or not isinstance(row.get("article"), str) or not isinstance(row.get("summary"), str):
                raise ValueError(f"{field} '{path}' line {number} must be an object with string 'article' and 'summary'")
            rows += 1
    if rows == 0:
        raise ValueError(f"{field} '{path}' has no rows")
    return rows


class Seq2SeqSpec(_Strict):
    """Fine-tune a Hugging Face seq2seq summarizer on edited articles.

    ``model``: a local directory with the model and its tokenizer (``save_pretrained``).
    ``train_data``: a .jsonl of ``{"article", "summary"}``: articles edited under the chosen
    failure modes with their reference summaries. ``clean_data`` (optional): unedited pairs
    in the same format, mixed in. ``input_prefix``: put before every article (e.g.
    ``"summarize: "`` for T5 checkpoints trained with it). Writes checkpoints to
    ``output_dir/checkpoints``, the final model and tokenizer to ``output_dir/model`` and
    ``output_dir/metrics.json``.
    """

    kind: Literal["seq2seq"] = "seq2seq"
    model: str
    train_data: str
    clean_data: str | None = None
    output_dir: str
    input_prefix: str = ""
    hyper: Seq2SeqHyper = pydantic.Field(default_factory=Seq2SeqHyper)

    @pydantic.model_validator(mode="after")
    def _inputs_exist(self) -> "Seq2SeqSpec":
        model = Path(self.model)
        if not model.is_dir():
            raise ValueError(f"model '{self.model}' is not a directory (a save_pretrained model and tokenizer)")
        if not (model / "config.json").is_file():
            raise ValueError(f"model '{self.model}' has no config.json; save the model with save_pretrained")
        check_pairs_file(self.train_data, "train_data")
        if self.clean_data is not None:
            check_pairs_file(self.clean_data, "clean_data")
        return self
