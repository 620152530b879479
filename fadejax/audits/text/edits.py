"""Named text edits: the action set of the text-summarization audit (paper §2.3.2, App. B.2).

Every edit is a pure function ``fn(text: str, rng: numpy.random.Generator) -> str``:

* deterministic given the text and the generator's state (``apply`` builds it as
  ``np.random.default_rng(seed)``);
* it changes one random spot per application (one word, one character, one verb, one
  clause), except the text-wide ones (``remove_punctuation``, ``lower_case``,
  ``drop_stop_words``, ``shuffle_sentences``); microscopic episodes apply edits repeatedly;
* where it cannot apply (no auxiliary to negate, no punctuation to remove) it returns the
  text unchanged, and it never returns an empty text or one with no word left when the
  input had one: it returns the input instead.

The text is split into word, whitespace and punctuation tokens by one regular expression
whose tokens concatenate back to the text, so everything an edit does not touch stays
byte-identical. Grammar-aware edits (``negate``, ``change_tense``, ``change_number``) find
verbs and nouns with lemminflect's dictionary plus a few word-order cues (a determiner
before a noun, a subject before a verb); they are heuristics, not a parser.

The registry ``EDITS`` keeps insertion order, which is the default action order of the
audit. Users add their own edits with ``register``.
"""

from __future__ import annotations

import functools
import math
import operator
import pickle
import re
import unicodedata
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any, Callable, Sequence

import numpy as np

from fadejax.audits.text import wordlists as wl

EditFn = Callable[[str, np.random.Generator], str]


class TextEditError(ValueError):
    """Unknown edit name, duplicate registration, or bad arguments to ``apply*``."""


@dataclass(frozen=True)
class TextEdit:
    """One named edit: ``fn(text, rng) -> text``; ``description`` is one line for reports."""

    name: str
    description: str
    fn: EditFn


EDITS: dict[str, TextEdit] = {}


# --------------------------------------------------------------------------- tokens

_WORD = r"[^\W_]+(?:['’][^\W_]+)*"
_TOKEN_RE = re.compile(rf"\s+|{_WORD}|(?:[^\w\s]|_)+")
_WORD_RE = re.compile(_WORD)


def _tokens(text: str) -> list[str]:
    """Words (letters/digits, inner apostrophes), whitespace runs, other-character runs; ``"".join`` gives ``text``."""
    return _TOKEN_RE.findall(text)


def _is_word(token: str) -> bool:
    return _WORD_RE.fullmatch(token) is not None


def _word_indices(tokens: list[str]) -> list[int]:
    return [i for i, t in enumerate(tokens) if _is_word(t)]


def _has_word(text: str) -> bool:
    return _WORD_RE.search(text) is not None


def _pick(rng: np.random.Generator, items: Sequence[Any]) -> Any:
    return items[int(rng.integers(len(items)))]


def _match_case(template: str, word: str) -> str:
    """``word`` cased like ``template``: ALL CAPS, Capitalised, or as is."""
    if len(template) > 1 and template.isupper():
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _norm(word: str) -> str:
    return word.lower().replace("’", "'")


def _remove_token(tokens: list[str], i: int) -> None:
    """Delete token ``i`` and one whitespace token beside it, in place.

    The space before goes, unless it is the text's leading space: then the space after.
    """
    if i > 1 and tokens[i - 1].isspace():
        del tokens[i - 1 : i + 1]
    elif i + 1 < len(tokens) and tokens[i + 1].isspace():
        del tokens[i : i + 2]
    else:
        del tokens[i]


def _prev_word(tokens: list[str], i: int) -> str | None:
    """The word right before token ``i`` (only whitespace between), lower-cased; else None."""
    j = i - 1
    if j >= 0 and tokens[j].isspace():
        j -= 1
    return _norm(tokens[j]) if j >= 0 and _is_word(tokens[j]) else None


def _next_word_index(tokens: list[str], i: int) -> int | None:
    j = i + 1
    if j < len(tokens) and tokens[j].isspace():
        j += 1
    return j if j < len(tokens) and _is_word(tokens[j]) else None


def _safe(original: str, edited: str) -> str:
    """The edited text, or the original if the edit left it blank or took its last word."""
    if not edited.strip() or (_has_word(original) and not _has_word(edited)):
        return original
    return edited


# --------------------------------------------------------------------------- lexicon

@functools.cache
def _lemminflect() -> Any:
    try:
        import lemminflect
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise TextEditError("the grammar edits need lemminflect: pip install 'fadejax[text]'") from err
    return lemminflect


@functools.lru_cache(maxsize=1 << 16)
def _readings(word: str) -> dict[str, tuple[str, ...]]:
    """Lemmas of a lower-case word by universal POS (e.g. ``{'NOUN': ('dog',), 'VERB': ('dog',)}``)."""
    return _lemminflect().getAllLemmas(word)


@functools.lru_cache(maxsize=1 << 16)
def _inflections(lemma: str, upos: str) -> dict[str, tuple[str, ...]]:
    """Penn-tag -> forms of ``lemma`` (e.g. ``{'VBD': ('walked',), 'VBZ': ('walks',), ...}``)."""
    return _lemminflect().getAllInflections(lemma, upos)


def _is_proper(tokens: list[str], i: int) -> bool:
    """Capitalised inside a clause: probably a name, which number/tense edits leave alone."""
    word = tokens[i]
    return word[:1].isupper() and word != "I" and _prev_word(tokens, i) is not None


def _noun_switch(tokens: list[str], i: int) -> tuple[str, bool] | None:
    """(the other number of the noun at ``i``, whether it is surely a noun), or None."""
    word = _norm(tokens[i])
    readings = _readings(word)
    if "NOUN" not in readings or word in wl.STOP_WORDS or _is_proper(tokens, i):
        return None
    lemma = readings["NOUN"][0]
    plurals = _inflections(lemma, "NOUN").get("NNS", ())
    if word == lemma:
        others = [p for p in plurals if p != word]
    elif word in plurals:
        others = [lemma]
    else:
        return None
    if not others:
        return None
    prev = _prev_word(tokens, i)
    sure = set(readings) <= {"NOUN", "ADJ", "PROPN"} or prev in wl.DETERMINERS
    return _match_case(tokens[i], others[0]), sure


def _is_plural_noun(word: str) -> bool:
    readings = _readings(word)
    if "NOUN" not in readings:
        return False
    lemma = readings["NOUN"][0]
    return word != lemma and word in _inflections(lemma, "NOUN").get("NNS", ())


def _verb_form(tokens: list[str], i: int) -> tuple[str, str] | None:
    """(lemma, tag) if the word at ``i`` reads as a finite main verb here, tag VBZ/VBD/VBP.

    be/have/do are left to the auxiliary tables. A verb reading counts when the word has no
    other reading, or a subject (pronoun or noun) stands right before it; never after a
    determiner, "to", or a be/have/get form (then a past form is a participle).
    """
    word = _norm(tokens[i])
    readings = _readings(word)
    if "VERB" not in readings or _is_proper(tokens, i):
        return None
    lemma = readings["VERB"][0]
    if lemma in ("be", "have", "do"):
        return None
    forms = _inflections(lemma, "VERB")
    if word != lemma and word in forms.get("VBZ", ()):
        tag = "VBZ"
    elif word != lemma and word in forms.get("VBD", ()):
        tag = "VBD"
    elif word in forms.get("VBP", ()):
        tag = "VBP"
    else:
        return None
    prev = _prev_word(tokens, i)
    if prev in wl.DETERMINERS or prev in wl.PARTICIPLE_CUES or prev in wl.MODALS or prev in ("to", "not", "does", "do", "did"):
        return None
    noun_before = _noun_subject_before(tokens, i)
    if tag == "VBP":  # the base form: a finite verb only right after I/you/we/they or a plural noun
        plural_subject = prev in ("i",) + wl.PLURAL_PRONOUNS or (noun_before and _is_plural_noun(prev))
        return (lemma, tag) if plural_subject else None
    only_verb = set(readings) <= {"VERB", "AUX"}
    return (lemma, tag) if only_verb or prev in wl.SUBJECT_PRONOUNS or noun_before else None


def _noun_subject_before(tokens: list[str], i: int) -> bool:
    """Whether the word before ``i`` is surely a noun: a noun reading and no verb reading,
    or right after a determiner ("the dog barks", but not "he reads books")."""
    j = i - 1
    if j >= 0 and tokens[j].isspace():
        j -= 1
    prev = _prev_word(tokens, i)
    if prev is None or prev in wl.STOP_WORDS:
        return False
    readings = _readings(prev)
    if "NOUN" not in readings:
        return False
    return "VERB" not in readings or _prev_word(tokens, j) in wl.DETERMINERS


def _subject_kind(tokens: list[str], i: int) -> int:
    """Agreement of the verb at ``i`` from the word before it: 0 = I, 1 = plural, 2 = singular."""
    prev = _prev_word(tokens, i)
    if prev == "i":
        return 0
    if prev in wl.PLURAL_PRONOUNS or (prev is not None and _is_plural_noun(prev)):
        return 1
    return 2


# --------------------------------------------------------------------------- character edits

def _edit_one_word(
    text: str,
    rng: np.random.Generator,
    eligible: Callable[[str], bool],
    change: Callable[[str, np.random.Generator], str],
) -> str:
    tokens = _tokens(text)
    spots = [i for i in _word_indices(tokens) if eligible(tokens[i])]
    if not spots:
        return text
    i = _pick(rng, spots)
    tokens[i] = change(tokens[i], rng)
    return _safe(text, "".join(tokens))


def _vowel_positions(word: str) -> list[int]:
    return [k for k, c in enumerate(word) if c.lower() in wl.VOWELS]


def _swap_vowel(word: str, rng: np.random.Generator) -> str:
    k = _pick(rng, _vowel_positions(word))
    old = word[k].lower()
    new = _pick(rng, [v for v in wl.VOWELS if v != old])
    return word[:k] + (new.upper() if word[k].isupper() else new) + word[k + 1 :]


def misspell(text: str, rng: np.random.Generator) -> str:
    """One word -> a common misspelling of it (project table); no such word: swap one vowel."""
    tokens = _tokens(text)
    spots = [i for i in _word_indices(tokens) if _norm(tokens[i]) in wl.MISSPELLINGS]
    if spots:
        i = _pick(rng, spots)
        tokens[i] = _match_case(tokens[i], _pick(rng, wl.MISSPELLINGS[_norm(tokens[i])]))
        return _safe(text, "".join(tokens))
    return _edit_one_word(text, rng, lambda w: bool(_vowel_positions(w)), _swap_vowel)


def delete_char(text: str, rng: np.random.Generator) -> str:
    """Delete one character of one word of two or more characters."""

    def change(word: str, rng: np.random.Generator) -> str:
        k = int(rng.integers(len(word)))
        return word[:k] + word[k + 1 :]

    return _edit_one_word(text, rng, lambda w: len(w) >= 2, change)


def insert_char(text: str, rng: np.random.Generator) -> str:
    """Insert one random letter a-z (upper case inside an ALL-CAPS word) into one word."""

    def change(word: str, rng: np.random.Generator) -> str:
        letter = "abcdefghijklmnopqrstuvwxyz"[int(rng.integers(26))]
        if len(word) > 1 and word.isupper():
            letter = letter.upper()
        k = int(rng.integers(len(word) + 1))
        return word[:k] + letter + word[k:]

    return _edit_one_word(text, rng, lambda w: True, change)


def repeat_char(text: str, rng: np.random.Generator) -> str:
    """Double one character of one word ("word" -> "woord")."""

    def change(word: str, rng: np.random.Generator) -> str:
        k = int(rng.integers(len(word)))
        return word[: k + 1] + word[k:]

    return _edit_one_word(text, rng, lambda w: True, change)


def _swappable(word: str) -> list[int]:
    return [k for k in range(len(word) - 1) if word[k] != word[k + 1]]


def swap_chars(text: str, rng: np.random.Generator) -> str:
    """Swap two adjacent, different characters of one word ("word" -> "wrod")."""

    def change(word: str, rng: np.random.Generator) -> str:
        k = _pick(rng, _swappable(word))
        return word[:k] + word[k + 1] + word[k] + word[k + 2 :]

    return _edit_one_word(text, rng, lambda w: bool(_swappable(w)), change)


def _qwerty_positions(word: str) -> list[int]:
    return [k for k, c in enumerate(word) if c.lower() in wl.QWERTY_NEIGHBOURS]


def keyboard_typo(text: str, rng: np.random.Generator) -> str:
    """Replace one letter a-z of one word by a neighbouring key on a QWERTY keyboard (case kept)."""

    def change(word: str, rng: np.random.Generator) -> str:
        k = _pick(rng, _qwerty_positions(word))
        new = _pick(rng, wl.QWERTY_NEIGHBOURS[word[k].lower()])
        return word[:k] + (new.upper() if word[k].isupper() else new) + word[k + 1 :]

    return _edit_one_word(text, rng, lambda w: bool(_qwerty_positions(w)), change)


def _cased_positions(word: str) -> list[int]:
    return [k for k, c in enumerate(word) if c.lower() != c.upper()]


def random_case(text: str, rng: np.random.Generator) -> str:
    """Give each letter of one word a random case (at least one letter changes)."""

    def change(word: str, rng: np.random.Generator) -> str:
        flips = rng.random(len(word)) < 0.5
        chars = [c.upper() if f else c.lower() for c, f in zip(word, flips)]
        new = "".join(chars)
        if new == word:
            k = _pick(rng, _cased_positions(word))
            new = word[:k] + word[k].swapcase() + word[k + 1 :]
        return new

    return _edit_one_word(text, rng, lambda w: bool(_cased_positions(w)), change)


# --------------------------------------------------------------------------- text-wide edits

def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


def remove_punctuation(text: str, rng: np.random.Generator) -> str:
    """Remove every punctuation character (Unicode category P), apostrophes in words too.

    A punctuation run that stood alone between two spaces takes one of the spaces with it.
    """
    tokens = _tokens(text)
    out: list[str] = []
    for i, tok in enumerate(tokens):
        if tok.isspace():
            out.append(tok)
            continue
        kept = "".join(c for c in tok if not _is_punct(c))
        if not kept and out and out[-1].isspace() and i + 1 < len(tokens) and tokens[i + 1].isspace():
            out.pop()
        out.append(kept)
    return _safe(text, "".join(out))


def lower_case(text: str, rng: np.random.Generator) -> str:
    """``text.lower()``."""
    return _safe(text, text.lower())


def drop_stop_words(text: str, rng: np.random.Generator) -> str:
    """Delete every English stop word (scikit-learn's list), with one space beside each."""
    tokens = _tokens(text)
    stops = wl.STOP_WORDS
    for i in reversed(_word_indices(tokens)):
        if _norm(tokens[i]) in stops:
            _remove_token(tokens, i)
    return _safe(text, "".join(tokens))


# --------------------------------------------------------------------------- word edits

def delete_word(text: str, rng: np.random.Generator) -> str:
    """Delete one word and one space beside it (a one-word text stays as it is)."""
    tokens = _tokens(text)
    spots = _word_indices(tokens)
    if len(spots) < 2:
        return text
    _remove_token(tokens, _pick(rng, spots))
    return _safe(text, "".join(tokens))


def repeat_word(text: str, rng: np.random.Generator) -> str:
    """Repeat one word right after itself ("the cat" -> "the the cat")."""
    tokens = _tokens(text)
    spots = _word_indices(tokens)
    if not spots:
        return text
    i = _pick(rng, spots)
    tokens[i + 1 : i + 1] = [" ", tokens[i]]
    return "".join(tokens)


# --------------------------------------------------------------------------- grammar edits

def _negation_spots(tokens: list[str]) -> list[tuple[int, str]]:
    """(token index, kind) where kind is 'contraction', 'drop_not', 'add_not' or 'do_not'."""
    spots: list[tuple[int, str]] = []
    for i in _word_indices(tokens):
        word = _norm(tokens[i])
        prev = _prev_word(tokens, i)
        if word in wl.NEGATIVE_CONTRACTIONS:
            spots.append((i, "contraction"))
        elif word in wl.AUXILIARIES:
            j = _next_word_index(tokens, i)
            if j is not None and _norm(tokens[j]) == "not":
                spots.append((i, "drop_not"))
            elif prev not in ("to",) + wl.MODALS:
                spots.append((i, "add_not"))
        elif _verb_form(tokens, i) is not None:
            spots.append((i, "do_not"))
    return spots


def negate(text: str, rng: np.random.Generator) -> str:
    """Negate one verb or undo its negation.

    "is" -> "is not", "is not" -> "is", "isn't" -> "is", "walks" -> "does not walk",
    "walked" -> "did not walk", "they walk" -> "they do not walk".
    """
    tokens = _tokens(text)
    spots = _negation_spots(tokens)
    if not spots:
        return text
    i, kind = _pick(rng, spots)
    word = tokens[i]
    caps = len(word) > 1 and word.isupper()
    if kind == "contraction":
        tokens[i] = _match_case(word, wl.NEGATIVE_CONTRACTIONS[_norm(word)])
    elif kind == "drop_not":
        j = _next_word_index(tokens, i)
        del tokens[i + 1 : j + 1]
    elif kind == "add_not":
        tokens[i] = word + (" NOT" if caps else " not")
    else:
        lemma, tag = _verb_form(tokens, i)
        do = {"VBZ": "does", "VBD": "did", "VBP": "do"}[tag]
        tokens[i] = _match_case(word, f"{do} not {lemma}")
    return _safe(text, "".join(tokens))


def _tense_switch(tokens: list[str], i: int) -> str | None:
    """The word at ``i`` in the other tense (past <-> present), or None if it is no finite verb."""
    word = _norm(tokens[i])
    prev = _prev_word(tokens, i)
    if word in wl.AUX_TO_PAST or word in wl.AUX_TO_PRESENT:
        if prev in ("to",) + wl.MODALS:
            return None
        if word in wl.AUX_TO_PAST:
            return wl.AUX_TO_PAST[word]
        return wl.AUX_TO_PRESENT[word][_subject_kind(tokens, i)]
    form = _verb_form(tokens, i)
    if form is None:
        return None
    lemma, tag = form
    forms = _inflections(lemma, "VERB")
    if tag in ("VBZ", "VBP"):
        target = forms.get("VBD", ())
    else:
        target = forms.get("VBZ" if _subject_kind(tokens, i) == 2 else "VBP", ())
    return target[0] if target and target[0] != word else None


def change_tense(text: str, rng: np.random.Generator) -> str:
    """Put one finite verb in the other tense: "walked" <-> "walks", "was" <-> "is", "had" <-> "has"."""
    tokens = _tokens(text)
    spots = [(i, new) for i in _word_indices(tokens) if (new := _tense_switch(tokens, i)) is not None]
    if not spots:
        return text
    i, new = _pick(rng, spots)
    tokens[i] = _match_case(tokens[i], new)
    return _safe(text, "".join(tokens))


def change_number(text: str, rng: np.random.Generator) -> str:
    """Switch one noun between singular and plural ("dog" <-> "dogs", "child" <-> "children").

    Words that are surely nouns (only a noun reading, or right after a determiner) go first;
    words that may also be verbs are used only when there is no sure noun.
    """
    tokens = _tokens(text)
    sure: list[tuple[int, str]] = []
    maybe: list[tuple[int, str]] = []
    for i in _word_indices(tokens):
        switched = _noun_switch(tokens, i)
        if switched is not None and _verb_form(tokens, i) is None:
            (sure if switched[1] else maybe).append((i, switched[0]))
    spots = sure or maybe
    if not spots:
        return text
    i, new = _pick(rng, spots)
    tokens[i] = new
    return _safe(text, "".join(tokens))


# --------------------------------------------------------------------------- structure edits

# Sentence boundary: whitespace after . ! ? (optionally closed by a quote or bracket), or a newline.
_SENTENCE_SEP = re.compile(r"((?:(?<=[.!?])|(?<=[.!?][\"'”’)\]]))\s+|\s*\n\s*)")
_CLAUSE_SEP = re.compile(r",?\s+(?:" + "|".join(wl.CLAUSE_JOINERS) + r")\s+|,\s+")
_SENTENCE_END = re.compile(r"[.!?;:…]+[\"'”’)\]]*$")


def _split_sentences(text: str) -> tuple[str, list[str], list[str], str]:
    """(leading space, sentences, separators between them, trailing space)."""
    body = text.strip()
    if not body:
        return text, [], [], ""
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()) :]
    parts = _SENTENCE_SEP.split(body)
    return lead, parts[0::2], parts[1::2], trail


def _join_sentences(lead: str, sentences: list[str], seps: list[str], trail: str) -> str:
    out = [lead]
    for k, sentence in enumerate(sentences):
        out.append(sentence)
        if k < len(seps):
            out.append(seps[k])
    out.append(trail)
    return "".join(out)


def shuffle_sentences(text: str, rng: np.random.Generator) -> str:
    """Shuffle the order of the sentences; separators stay in place (unchanged if < 2 distinct)."""
    lead, sentences, seps, trail = _split_sentences(text)
    if len(set(sentences)) < 2:
        return text
    order = rng.permutation(len(sentences))
    shuffled = [sentences[k] for k in order]
    if shuffled == sentences:  # a rotation by one always differs when two sentences differ
        shuffled = sentences[1:] + sentences[:1]
    return _join_sentences(lead, shuffled, seps, trail)


def _swapped(sentence: str, match: re.Match[str]) -> str | None:
    left, sep, rest = sentence[: match.start()], match.group(), sentence[match.end() :]
    end = _SENTENCE_END.search(rest)
    right, tail = (rest[: end.start()], end.group()) if end else (rest, "")
    if not _has_word(left) or not _has_word(right) or left.strip() == right.strip():
        return None
    if left[:1].isupper() and right[:1].islower():
        # "When it rained, we stayed." -> "We stayed, when it rained." (names and "I" keep their capital)
        right = right[:1].upper() + right[1:]
        first = _WORD_RE.match(left)
        if first and first.group() != "I" and _norm(first.group()) in wl.STOP_WORDS:
            left = left[:1].lower() + left[1:]
    return right + sep + left + tail


def swap_clauses(text: str, rng: np.random.Generator) -> str:
    """Swap the two clauses on either side of one comma or conjunction in one sentence."""
    lead, sentences, seps, trail = _split_sentences(text)
    spots = [
        (k, new)
        for k, sentence in enumerate(sentences)
        for m in _CLAUSE_SEP.finditer(sentence)
        if (new := _swapped(sentence, m)) is not None
    ]
    if not spots:
        return text
    k, new = _pick(rng, spots)
    sentences[k] = new
    return _safe(text, _join_sentences(lead, sentences, seps, trail))


# --------------------------------------------------------------------------- registry

def names() -> list[str]:
    """Registered edit names in registry (default action) order."""
    return list(EDITS)


def get(name: str) -> TextEdit:
    """The edit called ``name``; unknown -> ``TextEditError`` listing the known names."""
    try:
        return EDITS[name]
    except (KeyError, TypeError):
        raise TextEditError(f"unknown text edit {name!r}; known edits: {', '.join(EDITS)}") from None


def register(edit: TextEdit) -> None:
    """Add ``edit`` to the registry (at the end of the order); a taken name -> ``TextEditError``."""
    if not isinstance(edit, TextEdit):
        raise TextEditError(f"register() takes a TextEdit, got {type(edit).__name__}")
    if not edit.name or not isinstance(edit.name, str):
        raise TextEditError("a text edit needs a non-empty string name")
    if not callable(edit.fn):
        raise TextEditError(f"text edit {edit.name!r}: fn must be callable (text, rng) -> text")
    if edit.name in EDITS:
        raise TextEditError(f"a text edit named {edit.name!r} is already registered; known edits: {', '.join(EDITS)}")
    EDITS[edit.name] = edit


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool):
        raise TextEditError(f"seed must be an int >= 0, got {seed!r}")
    try:
        value = operator.index(seed)
    except TypeError:
        raise TextEditError(f"seed must be an int >= 0, got {type(seed).__name__} {seed!r}") from None
    if value < 0:
        raise TextEditError(f"seed must be an int >= 0, got {value}")
    return value


def _check_text(text: Any) -> str:
    if not isinstance(text, str):
        raise TextEditError(f"text must be a str, got {type(text).__name__}")
    return text


def _run(fn: EditFn, text: str, seed: int) -> str:
    """One edit on one text with ``default_rng(seed)``; a blank result falls back to ``text``."""
    out = fn(text, np.random.default_rng(seed))
    if not isinstance(out, str):
        raise TextEditError(f"a text edit returned {type(out).__name__}, not str")
    return out if out.strip() or not text.strip() else text


def apply(name: str, text: str, seed: int) -> str:
    """Apply edit ``name`` to ``text`` with ``np.random.default_rng(seed)``."""
    return _run(get(name).fn, _check_text(text), _check_seed(seed))


def apply_sequence(names: Sequence[str], text: str, seeds: Sequence[int]) -> str:
    """Apply ``names[k]`` with ``seeds[k]`` in order, each to the previous result."""
    names, seeds = list(names), list(seeds)
    if len(names) != len(seeds):
        raise TextEditError(f"apply_sequence: {len(names)} edit names but {len(seeds)} seeds; known edits: {', '.join(EDITS)}")
    fns = [get(n).fn for n in names]
    seeds = [_check_seed(s) for s in seeds]
    out = _check_text(text)
    for fn, seed in zip(fns, seeds):
        out = _run(fn, out, seed)
    return out


def _run_chunk(jobs: list[tuple[EditFn, str, int]]) -> list[str]:
    return [_run(fn, text, seed) for fn, text, seed in jobs]


def apply_batch(names: Sequence[str], texts: Sequence[str], seeds: Sequence[int], workers: int = 0) -> list[str]:
    """``[apply(names[k], texts[k], seeds[k]) for k]``, in worker processes when ``workers > 1``.

    Workers are spawned (not forked: the parent may hold JAX threads) and receive each
    edit's function by reference, so a user edit must be a module-level function to run
    with ``workers > 1``. The result is the same for any ``workers``.
    """
    names, texts, seeds = list(names), list(texts), list(seeds)
    if not (len(names) == len(texts) == len(seeds)):
        raise TextEditError(
            f"apply_batch: lengths differ ({len(names)} names, {len(texts)} texts, {len(seeds)} seeds); "
            f"known edits: {', '.join(EDITS)}"
        )
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise TextEditError(f"workers must be an int >= 0 (0 or 1: in this process), got {workers!r}")
    edits = {n: get(n) for n in names}
    jobs = [(edits[n].fn, _check_text(t), _check_seed(s)) for n, t, s in zip(names, texts, seeds)]
    if workers <= 1 or len(jobs) <= 1:
        return _run_chunk(jobs)
    for edit in edits.values():
        try:
            pickle.dumps(edit.fn)
        except Exception as err:
            raise TextEditError(
                f"text edit {edit.name!r} cannot be sent to worker processes ({err}); "
                "define its fn at module level or use workers=0"
            ) from None
    size = max(1, math.ceil(len(jobs) / (workers * 4)))
    chunks = [jobs[k : k + size] for k in range(0, len(jobs), size)]
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=get_context("spawn")) as pool:
        return [out for part in pool.map(_run_chunk, chunks) for out in part]


for _fn, _description in (
    (misspell, "misspell one word (common-misspellings table, else swap one vowel)"),
    (delete_char, "delete one character of a word"),
    (insert_char, "insert a random letter into a word"),
    (repeat_char, "repeat one character of a word"),
    (swap_chars, "swap two adjacent characters of a word"),
    (keyboard_typo, "replace one letter with a neighbouring QWERTY key"),
    (random_case, "randomly change the letter case of one word"),
    (remove_punctuation, "remove all punctuation"),
    (lower_case, "lower-case the whole text"),
    (drop_stop_words, "drop every English stop word"),
    (delete_word, "delete one word"),
    (repeat_word, "repeat one word"),
    (negate, "add or remove a negation at one verb"),
    (change_tense, "switch one verb between past and present tense"),
    (change_number, "switch one noun between singular and plural"),
    (shuffle_sentences, "shuffle the order of the sentences"),
    (swap_clauses, "swap the two clauses around one comma or conjunction"),
):
    register(TextEdit(_fn.__name__, _description, _fn))
del _fn, _description
