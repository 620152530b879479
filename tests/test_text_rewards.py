"""Summarization rewards: BLEU as sacrebleu computes it, eq. 6 / eq. 7 in both forms, Def. 2.1,
and the text data sets (the built-in articles and the summarize-from-feedback loader)."""

import numpy as np
import pytest
import sacrebleu

from fadejax.audits.text.data import TextDataError, builtin_articles, load_summarize_from_feedback
from fadejax.audits.text.rewards import (
    RewardInputError, bleu_batch, failed, macro_reward, micro_reward, score_summaries, word_lengths,
)

HYPS = ["the council approved the plan on monday", "storm leaves homes without power", "", "a b c"]
REFS = ["the council approved the new plan on monday", "storm leaves thousands of homes without power", "anything", "a b c"]


def test_bleu_matches_sacrebleu_sentence_bleu_divided_by_100():
    got = bleu_batch(HYPS, REFS)
    expected = [sacrebleu.sentence_bleu(h, [r]).score / 100 for h, r in zip(HYPS, REFS)]
    assert got.dtype == np.float64 and got.shape == (4,)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert got[3] == pytest.approx(1.0) and got[2] == 0.0
    assert 0.0 < got[0] < 1.0


def test_eq6_and_eq7_paper_form_by_hand():
    bleu = np.array([0.25, 1.0, 0.0])
    # (1 - BLEU) * len(prediction), len in words
    np.testing.assert_allclose(macro_reward(bleu, word_lengths(["a b c d", "x", "one two"])), [3.0, 0.0, 2.0])
    # (1 - BLEU) - steps
    np.testing.assert_allclose(micro_reward(bleu, [1, 2, 3]), [-0.25, -2.0, -2.0])


def test_authors_form_by_hand():
    bleu = np.array([0.25, 0.5])
    # 100 BLEU * (characters of the edited article - characters of the original)
    np.testing.assert_allclose(macro_reward(bleu, [110, 90], "authors", original_lengths=[100, 100]), [250.0, -500.0])
    # 100 BLEU - (steps - 1): their step counter starts at 0
    np.testing.assert_allclose(micro_reward(bleu, [1, 3], "authors"), [25.0, 48.0])


def test_failure_is_a_drop_of_more_than_epsilon_from_the_clean_bleu():
    clean = np.array([0.75, 0.75, 0.75, 0.25])
    edited = np.array([0.75, 0.625, 0.5, 0.0])  # drops 0, 0.125 (= epsilon: not more), 0.25, 0.25
    np.testing.assert_array_equal(failed(edited, clean, 0.125), [False, False, True, True])
    np.testing.assert_array_equal(failed(edited, clean, 0.0), [False, True, True, True])
    np.testing.assert_array_equal(failed(edited, clean, 1.0), [False] * 4)


def test_score_summaries_combines_bleu_reward_and_failure():
    clean = bleu_batch(REFS[:2], REFS[:2])  # a perfect clean summary: BLEU 1
    out = score_summaries(HYPS[:2], REFS[:2], clean, epsilon=0.1)
    np.testing.assert_allclose(out.bleu, bleu_batch(HYPS[:2], REFS[:2]))
    np.testing.assert_allclose(out.reward, (1 - out.bleu) * word_lengths(HYPS[:2]))
    np.testing.assert_array_equal(out.failed, clean - out.bleu > 0.1)
    micro = score_summaries(HYPS[:2], REFS[:2], clean, epsilon=0.1, exploration="micro", steps=[2, 2])
    np.testing.assert_allclose(micro.reward, (1 - out.bleu) - 2)
    edited, original = ["edited text here", "x"], ["edited text", "xy"]
    authors = score_summaries(HYPS[:2], REFS[:2], clean, epsilon=0.1, form="authors", edited_articles=edited, original_articles=original)
    np.testing.assert_allclose(authors.reward, 100 * bleu_batch(edited, HYPS[:2]) * np.array([5.0, -1.0]))
    np.testing.assert_array_equal(authors.failed, out.failed)  # failure does not depend on the form


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: bleu_batch(["a"], ["a", "b"]), "1 hypotheses but 2 references"),
        (lambda: bleu_batch("a b", ["a"]), "list of strings"),
        (lambda: macro_reward([1.5], [3]), "must be in [0, 1]"),
        (lambda: macro_reward([0.5, 0.5], [3]), "expected 2"),
        (lambda: macro_reward([[0.5]], [[3]]), "1-D"),
        (lambda: macro_reward([0.5], [3], "authors"), "needs original_lengths"),
        (lambda: macro_reward([0.5], [3], "bleurt"), "form must be one of"),
        (lambda: micro_reward([0.5], [0]), "steps must be whole numbers >= 1"),
        (lambda: failed([0.5], [0.5], 1.5), "epsilon must be a number in [0, 1]"),
        (lambda: failed([0.5], [0.5, 0.2], 0.1), "expected 1"),
        (lambda: score_summaries(["a"], ["a"], [1.0], epsilon=0.1, exploration="micro"), "needs steps"),
    ],
)
def test_bad_inputs_fail_clearly(call, message):
    with pytest.raises(RewardInputError) as info:
        call()
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


# ---------------------------------------------------------------- data


def test_builtin_articles_are_deterministic_disjoint_and_summarized():
    train = builtin_articles("train", 400)
    again = builtin_articles("train", 400)
    held_out = builtin_articles("held_out", 200)
    assert train.articles == again.articles and train.references == again.references
    assert len(train) == 400 and len(held_out) == 200
    assert not set(train.articles) & set(held_out.articles)
    assert not set(train.references) & set(held_out.references)  # not even the same key facts
    assert not set(builtin_articles("train", 400, seed=1).articles) & set(held_out.articles)
    assert builtin_articles("train", 50, seed=1).articles != train.articles[:50]
    assert len(set(train.articles)) == 400
    for article, summary in zip(train.articles[:50], train.references[:50]):
        assert 3 <= article.count(". ") + 1 <= 5
        assert summary.endswith(".") and summary.count(".") == 1
        assert len(summary.split()) < len(article.split())
    for topic in ("council approves", " beat ", "inches of", "quarter profit", "study finds", "Fire destroys", "school board hires"):
        assert any(topic in s for s in train.references), topic


def test_builtin_articles_bad_arguments():
    with pytest.raises(TextDataError, match="split must be one of"):
        builtin_articles("test")
    with pytest.raises(TextDataError, match="positive number"):
        builtin_articles("train", 0)


def _row(text, summary, key="post"):
    info = {"id": text[:8], "post": None, "article": None, "title": "t", "subreddit": None, "site": None}
    info[key] = text
    return {"info": info, "summary": {"text": summary, "policy": "ref", "note": None, "axes": {"overall": 5, "accuracy": 6}}, "worker": "w1"}


@pytest.fixture()
def feedback_rows():
    return [
        _row("My roommate never cleans the kitchen and I am tired of it.", "roommate does not clean"),
        _row("My roommate never cleans the kitchen and I am tired of it.", "a second rated summary"),
        _row("The city opened a new park on Sunday after two years of work.", "city opens new park", key="article"),
        _row("I got a new job but the commute is long.", "new job, long commute"),
    ]


def test_summarize_from_feedback_dataset_keeps_one_reference_per_article(tmp_path, feedback_rows):
    import datasets

    datasets.Dataset.from_list(feedback_rows).save_to_disk(str(tmp_path / "plain"))
    data = load_summarize_from_feedback(str(tmp_path / "plain"))
    assert data.articles == [feedback_rows[0]["info"]["post"], feedback_rows[2]["info"]["article"], feedback_rows[3]["info"]["post"]]
    assert data.references == ["roommate does not clean", "city opens new park", "new job, long commute"]
    assert len(load_summarize_from_feedback(str(tmp_path / "plain"), limit=2)) == 2


def test_summarize_from_feedback_dataset_dict_and_errors(tmp_path, feedback_rows):
    import datasets

    path = str(tmp_path / "axis")
    datasets.DatasetDict({
        "test": datasets.Dataset.from_list(feedback_rows[:2]),
        "validation": datasets.Dataset.from_list(feedback_rows[2:]),
    }).save_to_disk(path)
    assert load_summarize_from_feedback(path, "validation").references == ["city opens new park", "new job, long commute"]
    assert load_summarize_from_feedback(path, "test").name == "summarize_from_feedback:test"
    with pytest.raises(TextDataError, match=r"no split 'train'; its splits are \['test', 'validation'\]"):
        load_summarize_from_feedback(path, "train")
    with pytest.raises(TextDataError, match="choose one with split"):
        load_summarize_from_feedback(path)
    with pytest.raises(TextDataError, match="does not exist"):
        load_summarize_from_feedback(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TextDataError, match="not a directory written by datasets' save_to_disk"):
        load_summarize_from_feedback(str(tmp_path / "empty"))
    datasets.Dataset.from_list([{"text": "a", "label": 1}]).save_to_disk(str(tmp_path / "other"))
    with pytest.raises(TextDataError, match=r"lacks the column\(s\) \['info', 'summary'\]"):
        load_summarize_from_feedback(str(tmp_path / "other"))
    broken = [_row("an article", "a summary"), {**_row("another", "x"), "summary": {"text": "", "policy": "ref", "note": None, "axes": {"overall": 1, "accuracy": 1}}}]
    datasets.Dataset.from_list(broken).save_to_disk(str(tmp_path / "broken"))
    with pytest.raises(TextDataError, match="row 1 has no summary.text"):
        load_summarize_from_feedback(str(tmp_path / "broken"))
