"""``fadejax propose-conditions``: a local text-generation model proposes candidate
conditions for each class word, and a new config adds them.

For each word of the ``class`` axis the model is given ``prompt`` (``{class}`` filled in;
by default the config's ``conditions.class_prompt`` for a causal model, which continues
"a photo of a dog" with e.g. "on the beach", and a question for an encoder-decoder) and
samples several short texts. Each is cut at its first sentence mark, lower-cased, stripped
of quotes and braces and of an echo of the prompt, and kept if it has a letter and is new
for that class; the first ``per_class`` are its proposals. The new config is the given
one with the ``condition`` axis extended by every proposal (its own words first) and
``conditions.vocabulary`` mapping each class to its former candidates followed by its
proposals, so ``fadejax describe`` chooses among them and discovery searches them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from fadejax.engine.audit import AuditError

#: the question an encoder-decoder model answers for each class word
SEQ2SEQ_PROMPT = "Name a place or condition in which a photo of a {class} could be taken, as a short phrase such as 'on a beach'."
_SENTENCE_END = re.compile(r"[.\n;:!?()\[\]]")


def clean_proposal(text: str, echo: str, max_words: int) -> str | None:
    """``text`` as a condition phrase (its first clause, lower case, at most ``max_words``
    words, without ``echo`` at its start), or ``None`` if no word with a letter is left."""
    phrase = _SENTENCE_END.split(text, maxsplit=1)[0]
    phrase = re.sub(r"[\"'`{}]", "", phrase).lower()
    phrase = " ".join(phrase.split())
    echo = " ".join(echo.lower().split())
    if echo and phrase.startswith(echo):
        phrase = phrase[len(echo):].strip(" ,")
    phrase = " ".join(phrase.strip(" ,-").split()[:max_words])
    return phrase if re.search(r"[a-z]", phrase) else None


def propose(generator: Any, words: list[str], prompt: str, per_class: int, known: dict[str, list[str]], *, seed: int,
            max_words: int = 5, draws: int = 4) -> dict[str, list[str]]:
    """Up to ``per_class`` new conditions per class word: ``draws * per_class`` samples of
    ``prompt`` with the word filled in, cleaned (:func:`clean_proposal`), without repeats or
    the class's ``known`` candidates, in the order sampled. ``generator.sample(prompt,
    count, seed=, max_new_tokens=)`` returns texts (:class:`bridges.text_generator.TextGenerator`)."""
    from fadejax.audits.prompt.prompts import compose

    proposals: dict[str, list[str]] = {}
    for index, word in enumerate(words):
        text = compose(prompt, {"class": word})
        found: list[str] = []
        for sample in generator.sample(text, draws * per_class, seed=seed + index, max_new_tokens=2 * max_words):
            phrase = clean_proposal(sample, text, max_words)
            if phrase and phrase != word.lower() and phrase not in found and phrase not in known.get(word, []):
                found.append(phrase)
        proposals[word] = found[:per_class]
    return proposals


def proposed_config(data: dict[str, Any], axes: list[dict[str, Any]], proposals: dict[str, list[str]],
                    vocabulary: dict[str, list[str]]) -> dict[str, Any]:
    """The config mapping ``data`` (its ``space.axes`` set to ``axes``, the resolved ones)
    with the condition axis extended by ``proposals`` and each class's vocabulary its former
    candidates (``vocabulary``) followed by its proposals."""
    out = yaml.safe_load(yaml.safe_dump(data))  # a deep copy of plain data
    out["space"] = {**(out.get("space") or {}), "axes": yaml.safe_load(yaml.safe_dump(axes))}
    axis = out["space"]["axes"][1]
    for phrase in (p for word in proposals for p in proposals[word]):
        if phrase not in axis["values"]:
            axis["values"].append(phrase)
    out["conditions"]["vocabulary"] = {word: list(vocabulary[word]) + [p for p in proposals.get(word, []) if p not in vocabulary[word]]
                                       for word in vocabulary}
    return out


def propose_conditions(config, config_path: Path, overrides: list[str], generator_path: str, out: Path, *, per_class: int = 5,
                       prompt: str | None = None, seed: int = 0, device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Propose conditions for the class words of ``config`` (read from ``config_path`` with
    ``overrides``) with the local model at ``generator_path`` and write the extended config
    to ``out`` (which must not exist). Returns ``{"proposals", "config", "lines"}``."""
    from bridges.text_generator import load_text_generator
    from fadejax.audits.conditions import read_vocabulary
    from fadejax.audits.prompt.prompts import PromptError, validate_template
    from fadejax.engine.config import parse_config, read_config_data

    if per_class < 1:
        raise AuditError(f"--per-class {per_class}: give 1 or more")
    if out.exists():
        raise AuditError(f"--out '{out}' exists; name a new file (an existing config is never overwritten)")
    if prompt is not None:
        try:
            validate_template(prompt, ["class"])
        except PromptError as exc:
            raise AuditError(f"--prompt: {exc}") from None
    vocabulary = read_vocabulary(config)
    generator = load_text_generator(generator_path, device)
    prompt = prompt or (SEQ2SEQ_PROMPT if generator.encoder_decoder else config.conditions.class_prompt)
    words = [str(v) for v in config.space.axes[0].values]
    if progress:
        print(f"proposing {per_class} conditions for each of {len(words)} classes with '{generator_path}' ...", flush=True)
    proposals = propose(generator, words, prompt, per_class, vocabulary, seed=seed)

    data = read_config_data(config_path, overrides)
    axes = [a.model_dump(mode="json", exclude_none=True) for a in config.space.axes]
    extended = proposed_config(data, axes, proposals, vocabulary)
    parse_config(extended, source=str(out))  # what is written is a valid config
    header = (f"# {Path(config_path).name} with conditions proposed by fadejax propose-conditions: model '{generator_path}', "
              f"prompt {prompt!r}, seed {seed}, {per_class} per class\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(header + yaml.safe_dump(extended, sort_keys=False))
    tmp.replace(out)
    short = [w for w in words if len(proposals[w]) < per_class]
    lines = [f"{w}: {', '.join(proposals[w]) or '(nothing new)'}" for w in words]
    if short:
        lines.append(f"note: fewer than {per_class} new conditions for {short} (the model repeated itself or gave no words); "
                     "a new --seed samples again")
    lines.append(f"wrote {out}: the condition axis has {len(extended['space']['axes'][1]['values'])} words "
                 f"({len(config.space.axes[1].values)} before)")
    return {"proposals": proposals, "config": extended, "lines": lines}
