"""The seq2seq oracle: batched summaries and embeddings of texts from a Hugging Face model.

Per iteration the engine edits N articles on the host and calls :meth:`Seq2SeqOracle.summarize`
once (batched ``generate``) and :meth:`Seq2SeqOracle.embed` once (batched encoder pass) on
the N edited texts. Texts cross as Python lists of strings; embeddings come back as NumPy.
Models load only from a local directory or an already-filled Hugging Face cache; nothing
is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch

from bridges.weights import local_pretrained

Observation = Literal["encoder_mean", "sentence"]
PROJECTION_SEED = 0


class Seq2SeqError(RuntimeError):
    """A seq2seq model cannot be loaded or used as asked."""


class Seq2SeqSettingsError(Seq2SeqError, ValueError):
    """A generation or observation setting is out of range."""


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Seq2SeqSettingsError(f"{name} must be a positive integer, got {value!r}")
    return value


def _texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise Seq2SeqSettingsError("texts must be a list of strings")
    return list(texts)


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, T, D)`` states, ``(B, T)`` 0/1 mask -> ``(B, D)`` mean over the unmasked tokens."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class Seq2SeqOracle:
    """Wraps an encoder-decoder ``model`` (e.g. ``AutoModelForSeq2SeqLM``) and its ``tokenizer``.

    Args:
      model, tokenizer: the audited summarizer (put in eval mode here).
      device: torch device, e.g. ``"cpu"`` or ``"cuda:0"``.
      max_input_tokens: texts are truncated to this many tokens (prefix and special tokens included).
      max_new_tokens, num_beams: ``generate`` settings (greedy when ``num_beams`` is 1; no sampling).
      batch_size: texts per ``generate`` / encoder call; longer lists are chunked.
      observation: ``"encoder_mean"``: mask-aware mean of the audited model's last encoder
        states (the paper's BART embeddings); ``"sentence"``: mean-pooled last states of a
        separate ``embedder`` model.
      observation_dim: the embedding size the engine wants. ``None`` keeps the model's own
        (``d_model``); a different size applies a fixed Gaussian random projection,
        entries ``N(0, 1/observation_dim)`` drawn with seed 0, so distances are roughly kept
        (Johnson-Lindenstrauss). The authors' code instead cut or zero-padded to 1024.
      embedder: ``(model, tokenizer)`` of a local ``AutoModel`` for ``observation="sentence"``.
      input_prefix: text put before every input of the audited model, e.g. ``"summarize: "`` for
        T5 checkpoints trained with it (not before the separate embedder's inputs).
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        device: str = "cpu",
        max_input_tokens: int = 512,
        max_new_tokens: int = 64,
        num_beams: int = 1,
        batch_size: int = 32,
        observation: Observation = "encoder_mean",
        observation_dim: int | None = None,
        embedder: tuple[Any, Any] | None = None,
        input_prefix: str = "",
        path: str | None = None,
    ):
        self.max_input_tokens = _positive("max_input_tokens", max_input_tokens)
        self.max_new_tokens = _positive("max_new_tokens", max_new_tokens)
        self.num_beams = _positive("num_beams", num_beams)
        self.batch_size = _positive("batch_size", batch_size)
        if observation not in ("encoder_mean", "sentence"):
            raise Seq2SeqSettingsError(f"observation must be 'encoder_mean' or 'sentence', got {observation!r}")
        if observation == "sentence" and embedder is None:
            raise Seq2SeqSettingsError("observation='sentence' needs an embedder (a local AutoModel and its tokenizer)")
        if observation_dim is not None:
            _positive("observation_dim", observation_dim)
        if not isinstance(input_prefix, str):
            raise Seq2SeqSettingsError("input_prefix must be a string")
        if not getattr(model.config, "is_encoder_decoder", False):
            raise Seq2SeqError(f"{type(model).__name__} is not an encoder-decoder model; a seq2seq summarizer is needed")
        try:
            self.device = torch.device(device)
            self.model = model.to(self.device).eval()
            self.embedder = None if embedder is None else (embedder[0].to(self.device).eval(), embedder[1])
        except (RuntimeError, AssertionError) as exc:  # e.g. a CUDA device on a CPU-only torch
            raise Seq2SeqError(f"device '{device}' cannot be used here: {exc}") from None
        for name, net in (("model", self.model), ("embedder", None if self.embedder is None else self.embedder[0])):
            limit = getattr(getattr(net, "config", None), "max_position_embeddings", None)
            if isinstance(limit, int) and self.max_input_tokens > limit:
                raise Seq2SeqSettingsError(f"max_input_tokens {self.max_input_tokens} exceeds the {name}'s {limit} positions")
        if tokenizer.pad_token_id is None:
            raise Seq2SeqError("the tokenizer has no pad token; batched summaries need one")
        self.tokenizer = tokenizer
        self.observation = observation
        self.input_prefix = input_prefix
        self.path = path
        source = self.embedder[0] if observation == "sentence" else self.model
        self.native_dim = int(_hidden_size(source.config))
        self.observation_dim = self.native_dim if observation_dim is None else observation_dim
        self._projection = None
        if self.observation_dim != self.native_dim:
            rng = np.random.default_rng(PROJECTION_SEED)
            matrix = rng.normal(0.0, 1.0 / np.sqrt(self.observation_dim), size=(self.native_dim, self.observation_dim))
            self._projection = torch.from_numpy(matrix.astype(np.float32)).to(self.device)

    @property
    def info(self) -> dict[str, Any]:
        """Where the model came from and its size."""
        return {
            "path": self.path,
            "parameters": int(sum(p.numel() for p in self.model.parameters())),
            "d_model": int(_hidden_size(self.model.config)),
            "observation": self.observation,
            "observation_dim": self.observation_dim,
            "max_input_tokens": self.max_input_tokens,
            "max_new_tokens": self.max_new_tokens,
            "num_beams": self.num_beams,
            "device": str(self.device),
        }

    def _encode(self, tokenizer, texts: list[str], prefix: str = "") -> dict[str, torch.Tensor]:
        batch = tokenizer(
            [prefix + t for t in texts], padding=True, truncation=True,
            max_length=self.max_input_tokens, return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}

    def _chunks(self, texts: list[str]):
        for start in range(0, len(texts), self.batch_size):
            yield texts[start : start + self.batch_size]

    @torch.inference_mode()
    def summarize(self, texts: Sequence[str]) -> list[str]:
        """One summary per text, in order: one ``generate`` call per ``batch_size`` texts."""
        texts = _texts(texts)
        summaries: list[str] = []
        for chunk in self._chunks(texts):
            batch = self._encode(self.tokenizer, chunk, self.input_prefix)
            out = self.model.generate(**batch, max_new_tokens=self.max_new_tokens, num_beams=self.num_beams, do_sample=False)
            summaries.extend(self.tokenizer.batch_decode(out, skip_special_tokens=True))
        return [s.strip() for s in summaries]

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(B, observation_dim)`` float32 observation of each text (see the class docstring)."""
        texts = _texts(texts)
        parts = []
        for chunk in self._chunks(texts):
            if self.observation == "sentence":
                model, tokenizer = self.embedder
                batch = self._encode(tokenizer, chunk)
                encoder = model.get_encoder() if getattr(model.config, "is_encoder_decoder", False) else model
            else:
                batch = self._encode(self.tokenizer, chunk, self.input_prefix)
                encoder = self.model.get_encoder()
            hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            pooled = _mean_pool(hidden.float(), batch["attention_mask"])
            if self._projection is not None:
                pooled = pooled @ self._projection
            parts.append(pooled.cpu().numpy())
        if not parts:
            return np.zeros((0, self.observation_dim), np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)


def _hidden_size(config) -> int:
    for name in ("d_model", "hidden_size"):
        if getattr(config, name, None):
            return int(getattr(config, name))
    raise Seq2SeqError(f"cannot read the hidden size of a {type(config).__name__}")


def _load_pretrained(loader, path: str, what: str):
    try:
        return loader.from_pretrained(local_pretrained(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise Seq2SeqError(
            f"cannot load the {what} '{path}' from a local directory or the Hugging Face cache "
            f"(nothing is downloaded): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None


def load_seq2seq(path: str, device: str = "cpu", *, embedder_path: str | None = None, **kw) -> Seq2SeqOracle:
    """A :class:`Seq2SeqOracle` for the ``AutoModelForSeq2SeqLM`` + ``AutoTokenizer`` at ``path``.

    ``path`` is a local directory or a model id already in the Hugging Face cache
    (``local_files_only``: never downloads). ``embedder_path`` loads an ``AutoModel`` and its
    tokenizer the same way for ``observation="sentence"``. Other keywords go to the oracle.
    """
    from transformers import AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

    if not isinstance(path, str) or not path:
        raise Seq2SeqError(f"model path must be a non-empty string, got {path!r}")
    looks_local = path.startswith((".", "/", "~")) or Path(path).expanduser().exists()
    if looks_local and not Path(path).expanduser().is_dir():
        raise Seq2SeqError(f"model directory '{path}' does not exist")
    location = str(Path(path).expanduser()) if looks_local else path
    model = _load_pretrained(AutoModelForSeq2SeqLM, location, "seq2seq model")
    tokenizer = _load_pretrained(AutoTokenizer, location, "tokenizer of")
    embedder = None
    if embedder_path is not None:
        embedder = (_load_pretrained(AutoModel, embedder_path, "embedder model"), _load_pretrained(AutoTokenizer, embedder_path, "embedder tokenizer"))
    return Seq2SeqOracle(model, tokenizer, device=device, embedder=embedder, path=location, **kw)
