"""The text audit's config section, ``text``."""

from __future__ import annotations

from typing import Literal

import pydantic

from fadejax.core.strict import Strict as _Strict


class TextConfig(_Strict):
    """The text-summarization audit (``task: text``).

    ``data``: ``builtin`` (the project's generated news articles; ``held_out`` of them are
    audited) or ``summarize_from_feedback`` (the OpenAI data set's "axis" part saved by the
    ``datasets`` library at ``path``; ``split``, at most ``limit`` articles). ``model``:
    ``tiny`` (a small T5 the project trains once on its own articles) or a local directory
    of any Hugging Face seq2seq model. A query fails when the BLEU of its summary drops by
    more than ``epsilon`` below that of the unedited article's summary (Definition 2.1).
    """

    data: Literal["builtin", "summarize_from_feedback"] = "builtin"
    path: str | None = None
    split: str | None = None
    limit: pydantic.PositiveInt | None = None
    held_out: pydantic.PositiveInt = 200
    model: str = "tiny"
    device: str = "cpu"
    max_input_tokens: pydantic.PositiveInt = 512
    max_new_tokens: pydantic.PositiveInt = 48
    num_beams: pydantic.PositiveInt = 1
    batch_size: pydantic.PositiveInt = 64
    observation: Literal["encoder_mean", "sentence"] = "encoder_mean"
    observation_dim: pydantic.PositiveInt | None = None
    embedder: str | None = None
    epsilon: float = pydantic.Field(0.1, ge=0.0, le=1.0)
    reward_form: Literal["paper", "authors"] = "paper"
    edit_workers: int = pydantic.Field(0, ge=0)

    @pydantic.model_validator(mode="after")
    def _paths(self) -> "TextConfig":
        if self.data == "summarize_from_feedback" and not self.path:
            raise ValueError("text.data 'summarize_from_feedback' needs text.path (a directory saved by datasets' save_to_disk)")
        if self.observation == "sentence" and not self.embedder:
            raise ValueError("text.observation 'sentence' needs text.embedder (a local sentence-embedding model directory)")
        return self
