"""The text edits of the text audit (fadejax.audits.text.edits): registry, determinism, and what each edit does."""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pytest

from fadejax.audits.text import edits as E
from fadejax.audits.text import wordlists as wl

RICH = (
    "When it rained, we stayed home. The mice ran away! Because the government is weird, "
    "my friend believes it. The dogs were not happy and the cat walked to the park."
)
# Edits that change the whole text the same way every time (no random spot).
TEXT_WIDE = {"remove_punctuation", "lower_case", "drop_stop_words"}
EDGE_TEXTS = ["Hello", "a", "I", "...!?", "!", "The.", "  spaced   out  ", "it is", "Don't!", "x_y 42"]
SEEDS = [0, 1, 2, 3, 4, 5, 6, 7, 2**63 - 1]
WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def words(text: str) -> list[str]:
    return WORD.findall(text)


def outputs(name: str, text: str, seeds=range(12)) -> list[str]:
    return [E.apply(name, text, s) for s in seeds]


# ----------------------------------------------------------------- registry


def test_registry_has_at_least_16_named_described_edits():
    assert len(E.EDITS) >= 16
    assert E.names() == list(E.EDITS)
    for name in E.names():
        edit = E.get(name)
        assert edit.name == name and re.fullmatch(r"[a-z][a-z0-9_]*", name)
        assert edit.description.strip() and "\n" not in edit.description
        assert callable(edit.fn)
    assert E.names()[:3] == ["misspell", "delete_char", "insert_char"]


def test_unknown_name_and_duplicate_raise_with_known_names():
    with pytest.raises(E.TextEditError, match="known edits: misspell, delete_char") as err:
        E.get("no_such_edit")
    assert isinstance(err.value, ValueError) and "no_such_edit" in str(err.value)
    with pytest.raises(E.TextEditError, match="negate"):
        E.apply("typo", "some text", 0)
    with pytest.raises(E.TextEditError, match="already registered"):
        E.register(E.TextEdit("negate", "again", E.negate))


def test_register_user_edit_then_apply():
    edit = E.TextEdit("shout_test_only", "upper-case everything", lambda text, rng: text.upper())
    E.register(edit)
    try:
        assert E.names()[-1] == "shout_test_only"
        assert E.apply("shout_test_only", "quiet please", 3) == "QUIET PLEASE"
        # a lambda cannot travel to worker processes: a clear error, not a pickling traceback
        with pytest.raises(E.TextEditError, match="module level"):
            E.apply_batch(["shout_test_only"] * 2, ["a", "b"], [0, 1], workers=2)
        # a user edit that empties the text gets the text back
        E.register(E.TextEdit("erase_test_only", "erase everything", lambda text, rng: ""))
        assert E.apply("erase_test_only", "keep me", 0) == "keep me"
    finally:
        E.EDITS.pop("shout_test_only", None)
        E.EDITS.pop("erase_test_only", None)


def test_bad_seeds_texts_and_lengths_raise():
    with pytest.raises(E.TextEditError, match="seed"):
        E.apply("delete_word", "two words", -1)
    with pytest.raises(E.TextEditError, match="seed"):
        E.apply("delete_word", "two words", 1.5)
    with pytest.raises(E.TextEditError, match="str"):
        E.apply("delete_word", b"two words", 0)
    with pytest.raises(E.TextEditError, match="known edits: misspell"):
        E.apply_batch(["negate", "negate"], ["a b"], [0, 1])
    with pytest.raises(E.TextEditError, match="known edits: misspell"):
        E.apply_sequence(["negate", "lower_case"], "The cat is happy.", [0])
    with pytest.raises(E.TextEditError, match="workers"):
        E.apply_batch(["negate"], ["a b"], [0], workers=-2)


# ----------------------------------------------------------------- every edit


@pytest.mark.parametrize("name", E.names())
def test_deterministic_per_seed_and_seed_matters(name):
    for seed in SEEDS:
        assert E.apply(name, RICH, seed) == E.apply(name, RICH, seed)
        assert E.apply(name, RICH, seed) == E.get(name).fn(RICH, np.random.default_rng(seed))
    distinct = set(outputs(name, RICH))
    assert RICH not in distinct  # RICH offers every edit a spot
    if name in TEXT_WIDE:
        assert len(distinct) == 1
    else:
        assert len(distinct) >= 2, f"{name} ignores its seed"


@pytest.mark.parametrize("name", E.names())
def test_never_empty_and_never_loses_the_last_word(name):
    for text in EDGE_TEXTS:
        for seed in range(4):
            out = E.apply(name, text, seed)
            assert isinstance(out, str) and out.strip()
            assert words(out) or not words(text)
    assert E.apply(name, "...!?", 0) == "...!?"  # nothing an edit can use -> unchanged


# ----------------------------------------------------------------- what each one does


def one_diff(a: str, b: str) -> list[int]:
    assert len(a) == len(b)
    return [k for k, (x, y) in enumerate(zip(a, b)) if x != y]


def test_misspell_uses_the_table_else_a_vowel():
    text = "I received it because of the weather."
    for out in outputs("misspell", text):
        before, after = words(text), words(out)
        changed = [(x, y) for x, y in zip(before, after) if x != y]
        assert len(before) == len(after) and len(changed) == 1
        old, new = changed[0]
        assert new.lower() in wl.MISSPELLINGS[old.lower()]
    for out in outputs("misspell", "Xylophone zebra."):  # no word from the table
        (k,) = one_diff("Xylophone zebra.", out)
        assert "Xylophone zebra."[k].lower() in "aeiou" and out[k].lower() in "aeiou"
    assert E.apply("misspell", "The cat", 0) in ("Teh cat", "Th cat")


def test_character_edits_touch_one_spot():
    text = "Quick brown foxes jump."
    for out in outputs("delete_char", text):
        assert any(text[:k] + text[k + 1 :] == out for k in range(len(text)))
    for out in outputs("insert_char", text):
        hits = [k for k in range(len(out)) if out[:k] + out[k + 1 :] == text]
        assert hits and all(out[k].isalpha() for k in hits)
    for out in outputs("repeat_char", text):
        assert any(text[: k + 1] + text[k:] == out for k in range(len(text)))
    for out in outputs("swap_chars", text):
        k, k1 = one_diff(text, out)
        assert k1 == k + 1 and out[k] == text[k1] and out[k1] == text[k]
    assert E.apply("swap_chars", "aaa ooo", 0) == "aaa ooo"  # no two different neighbours


def test_keyboard_typo_uses_a_qwerty_neighbour():
    text = "Typing Fast"
    seen = set()
    for out in outputs("keyboard_typo", text, range(20)):
        (k,) = one_diff(text, out)
        assert out[k].lower() in wl.QWERTY_NEIGHBOURS[text[k].lower()]
        assert out[k].isupper() == text[k].isupper()
        seen.add(out)
    assert len(seen) >= 5
    assert set(wl.QWERTY_NEIGHBOURS["g"]) == set("fhtyvb") and set(wl.QWERTY_NEIGHBOURS["a"]) == set("qwsz")


def test_random_case_changes_case_of_one_word_only():
    text = "keep these words"
    for out in outputs("random_case", text):
        assert out != text and out.lower() == text
        assert sum(a != b for a, b in zip(words(text), words(out))) == 1


def test_remove_punctuation_and_lower_case():
    text = "Hello, world! It's fine - really (mostly)... \u201cquoted\u201d"
    out = E.apply("remove_punctuation", text, 0)
    assert not any(unicodedata.category(c).startswith("P") for c in out)
    assert out == "Hello world Its fine really mostly quoted"
    assert E.apply("remove_punctuation", "No punctuation here", 5) == "No punctuation here"
    assert E.apply("lower_case", RICH, 9) == RICH.lower()


def test_drop_stop_words_matches_scikit_learn_list():
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    assert wl.STOP_WORDS == frozenset(ENGLISH_STOP_WORDS)
    assert E.apply("drop_stop_words", "The cat is on the mat.", 0) == "cat mat."
    out = E.apply("drop_stop_words", RICH, 0)
    assert words(out) == [w for w in words(RICH) if w.lower() not in ENGLISH_STOP_WORDS]
    assert E.apply("drop_stop_words", "It is what it is.", 0) == "It is what it is."  # all stop words


def test_delete_and_repeat_word_change_the_word_count_by_one():
    text = "The quick brown fox jumps over the lazy dog."
    n = len(text.split())
    for out in outputs("delete_word", text):
        assert len(out.split()) == n - 1 and "  " not in out
    for out in outputs("repeat_word", text):
        toks = out.split()
        assert len(toks) == n + 1
        assert any(a == b.rstrip(".") or a == b for a, b in zip(toks, toks[1:]))
    assert E.apply("delete_word", "  Alone  ", 0) == "  Alone  "
    assert E.apply("delete_word", "  Two words  ", 0) in ("  Two  ", "  words  ")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The cat is happy.", "The cat is not happy."),
        ("The cat is not happy.", "The cat is happy."),
        ("The cat isn't happy.", "The cat is happy."),
        ("We can't go.", "We can go."),
        ("She walked home.", "She did not walk home."),
        ("The dog barks.", "The dog does not bark."),
        ("They walk home.", "They do not walk home."),
        ("Good morning, everyone!", "Good morning, everyone!"),
    ],
)
def test_negate(text, expected):
    assert set(outputs("negate", text, range(4))) == {expected}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("She walked home.", "She walks home."),
        ("The dog barks.", "The dog barked."),
        ("The cat is happy.", "The cat was happy."),
        ("They were tired.", "They are tired."),
        ("I was late.", "I am late."),
        ("The mice ran away.", "The mice run away."),
        ("He has a plan.", "He had a plan."),
        ("Blue sky.", "Blue sky."),
    ],
)
def test_change_tense(text, expected):
    assert set(outputs("change_tense", text, range(4))) == {expected}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The dog barks.", "The dogs barks."),
        ("The children played.", "The child played."),
        ("A mouse ran.", "A mice ran."),
        ("It is.", "It is."),
    ],
)
def test_change_number(text, expected):
    assert set(outputs("change_number", text, range(4))) == {expected}


def test_shuffle_sentences_keeps_the_multiset_of_sentences():
    text = "First one. Second one! Third one? Fourth one."
    split = lambda t: sorted(re.split(r"(?<=[.!?])\s+", t))  # noqa: E731
    outs = outputs("shuffle_sentences", text)
    assert all(split(o) == split(text) for o in outs)
    assert text not in outs and len(set(outs)) >= 3
    assert E.apply("shuffle_sentences", "Only one sentence here.", 0) == "Only one sentence here."
    assert E.apply("shuffle_sentences", "Same. Same.", 0) == "Same. Same."


@pytest.mark.parametrize(
    "text, expected",
    [
        ("When it rained, we stayed home.", {"We stayed home, when it rained."}),
        ("They walk to school and he reads books.", {"He reads books and they walk to school."}),
        ("No clause here.", {"No clause here."}),
    ],
)
def test_swap_clauses(text, expected):
    assert set(outputs("swap_clauses", text, range(4))) == expected


def test_untouched_text_stays_byte_identical():
    text = "Tabs\there,  two  spaces.\nNew line; ok."
    for name in ("delete_char", "keyboard_typo", "repeat_word", "misspell"):
        for out in outputs(name, text, range(6)):
            assert "\t" in out and "\n" in out and "  " in out


# ----------------------------------------------------------------- batches


def test_apply_sequence_is_edits_in_order():
    seq, seeds = ["negate", "change_tense", "repeat_word"], [3, 4, 5]
    expected = "The cat is happy."
    for name, seed in zip(seq, seeds):
        expected = E.apply(name, expected, seed)
    assert E.apply_sequence(seq, "The cat is happy.", seeds) == expected
    assert "not" in expected and "was" in expected
    assert E.apply_sequence([], "unchanged", []) == "unchanged"


def test_apply_batch_workers_match_in_process():
    names = [n for n in E.names() for _ in range(3)]
    texts = [RICH, "The cat is happy.", "Hello"] * len(E.names())
    seeds = [k * 7919 + 2**40 for k in range(len(names))]
    serial = E.apply_batch(names, texts, seeds, workers=0)
    assert serial == [E.apply(n, t, s) for n, t, s in zip(names, texts, seeds)]
    assert E.apply_batch(names, texts, seeds, workers=1) == serial
    assert E.apply_batch(names, texts, seeds, workers=2) == serial
