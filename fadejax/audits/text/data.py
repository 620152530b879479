"""Text data sets for the summarization audit: articles with one reference summary each.

Two sources:

- :func:`load_summarize_from_feedback`: OpenAI's summarize-from-feedback "axis" part (the
  paper's data, Appendix B.2) as the Hugging Face ``datasets`` library saves it with
  ``save_to_disk``. Nothing is downloaded.
- :func:`builtin_articles`: the project's own seeded news-style articles
  (:mod:`fadejax.audits.text.articles`), for the demo and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fadejax.audits.text import articles as _articles


class TextDataError(ValueError):
    """A text data set is missing, empty or not in the expected format."""


@dataclass(frozen=True)
class TextDataset:
    """``articles[i]`` is summarized by the reference ``references[i]``; both plain strings."""

    articles: list[str]
    references: list[str]
    name: str

    def __post_init__(self) -> None:
        if len(self.articles) != len(self.references):
            raise TextDataError(f"{self.name}: {len(self.articles)} articles but {len(self.references)} references")

    def __len__(self) -> int:
        return len(self.articles)


def builtin_articles(split: _articles.Split, n: int | None = None, seed: int = 0) -> TextDataset:
    """The project's generated articles: ``split`` is ``"train"`` or ``"held_out"``.

    ``n`` defaults to :data:`fadejax.audits.text.articles.DEFAULT_SIZES` (6,000 train, 500 held-out).
    The same arguments always give the same articles; no held-out article (nor its set of
    key facts) appears in ``train``, whatever the seeds.
    """
    if split not in _articles.DEFAULT_SIZES:
        raise TextDataError(f"split must be one of {sorted(_articles.DEFAULT_SIZES)}, got {split!r}")
    count = _articles.DEFAULT_SIZES[split] if n is None else n
    if not isinstance(count, int) or count < 1:
        raise TextDataError(f"n must be a positive number of articles, got {n!r}")
    texts, summaries = _articles.generate(split, count, seed)
    return TextDataset(texts, summaries, f"builtin-{split}-seed{seed}")


def _mapping(value: Any, column: str, index: int, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TextDataError(f"{where}: row {index} has no '{column}' mapping (summarize-from-feedback rows have 'info' and 'summary' dicts)")
    return value


def load_summarize_from_feedback(path: str, split: str | None = None, limit: int | None = None) -> TextDataset:
    """OpenAI's summarize-from-feedback "axis" rows saved with ``datasets``' ``save_to_disk``.

    Args:
      path: a directory holding a ``Dataset`` or a ``DatasetDict`` (e.g. the axis part with
        its ``test`` and ``validation`` splits).
      split: which split of a ``DatasetDict``; may be left out when it has only one. Must
        be left out for a plain ``Dataset``.
      limit: keep at most this many distinct articles (the first ones).

    Article text is ``info["post"]`` (Reddit TL;DR rows) or ``info["article"]`` (CNN/DM
    rows), whichever is non-empty; the reference is ``summary["text"]``. The axis part
    rates several summaries of each article, so an article appears on several rows: the
    first row's summary is kept as its one reference and later rows of the same article
    text are skipped.
    """
    import datasets  # imported here: only this loader needs it

    where = f"summarize-from-feedback data '{path}'"
    if not Path(path).is_dir():
        raise TextDataError(f"{where} does not exist or is not a directory")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise TextDataError(f"limit must be a positive number of articles, got {limit!r}")
    try:
        loaded = datasets.load_from_disk(path)
    except FileNotFoundError as exc:
        raise TextDataError(f"{where} is not a directory written by datasets' save_to_disk: {exc}") from None
    if isinstance(loaded, datasets.DatasetDict):
        splits = sorted(loaded)
        if split is None:
            if len(splits) != 1:
                raise TextDataError(f"{where} holds the splits {splits}; choose one with split")
            split = splits[0]
        if split not in loaded:
            raise TextDataError(f"{where} has no split '{split}'; its splits are {splits}")
        table = loaded[split]
    else:
        if split is not None:
            raise TextDataError(f"{where} holds a single Dataset without splits; leave split unset (got '{split}')")
        table = loaded
    missing = [c for c in ("info", "summary") if c not in table.column_names]
    if missing:
        raise TextDataError(f"{where} lacks the column(s) {missing}; its columns are {table.column_names}")

    texts: list[str] = []
    references: list[str] = []
    seen: set[str] = set()
    for i, (info, summary) in enumerate(zip(table["info"], table["summary"])):
        info = _mapping(info, "info", i, where)
        summary = _mapping(summary, "summary", i, where)
        text = info.get("post") or info.get("article")
        reference = summary.get("text")
        if not isinstance(text, str) or not text.strip():
            raise TextDataError(f"{where}: row {i} has neither info.post nor info.article text")
        if not isinstance(reference, str) or not reference.strip():
            raise TextDataError(f"{where}: row {i} has no summary.text")
        if text in seen:
            continue
        seen.add(text)
        texts.append(text)
        references.append(reference)
        if limit is not None and len(texts) >= limit:
            break
    if not texts:
        raise TextDataError(f"{where} has no rows")
    name = f"summarize_from_feedback:{split}" if split else "summarize_from_feedback"
    return TextDataset(texts, references, name)
