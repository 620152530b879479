"""The seq2seq oracle on tiny random BART and T5 models built here (no downloads): batched
summaries that do not depend on padding or chunking, truncation, mask-aware embeddings,
the random projection, a separate sentence embedder, and clear loading errors."""

import numpy as np
import pytest
import torch

from bridges.seq2seq import Seq2SeqError, Seq2SeqOracle, Seq2SeqSettingsError, load_seq2seq
from bridges.tiny_summarizer import build_word_tokenizer
from fadejax.audits.text.data import builtin_articles
from fadejax.audits.text.rewards import bleu_batch

ARTICLES = builtin_articles("held_out", 7).articles


def _tiny_model(kind: str, tokenizer):
    from transformers import BartConfig, BartForConditionalGeneration, T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    if kind == "t5":
        config = T5Config(vocab_size=len(tokenizer), d_model=32, d_ff=64, d_kv=8, num_layers=1, num_decoder_layers=1,
                          num_heads=4, decoder_start_token_id=tokenizer.pad_token_id, **ids)
        return T5ForConditionalGeneration(config)
    config = BartConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
                        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=512,
                        init_std=0.3,  # larger random weights: the output then depends on the input
                        bos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id,
                        forced_bos_token_id=None, forced_eos_token_id=None, **ids)
    return BartForConditionalGeneration(config)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread, above all on a busy machine; restore afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokenizer():
    data = builtin_articles("train", 300)
    return build_word_tokenizer(data.articles + data.references + ARTICLES)


@pytest.fixture(scope="module", params=["t5", "bart"])
def saved_model(request, tmp_path_factory, tokenizer):
    path = tmp_path_factory.mktemp(request.param)
    model = _tiny_model(request.param, tokenizer)
    # a random model may stop at once; make it write a few real words so comparing summaries means something
    model.generation_config.min_new_tokens = 4
    model.generation_config.suppress_tokens = [tokenizer.pad_token_id, tokenizer.unk_token_id]
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def _count_generate(oracle):
    calls = []
    original = oracle.model.generate

    def counting(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return original(*args, **kwargs)

    oracle.model.generate = counting
    return calls


def test_summaries_are_batched_by_chunk_and_do_not_depend_on_the_batch(saved_model):
    oracle = load_seq2seq(saved_model, max_new_tokens=12, batch_size=3)
    calls = _count_generate(oracle)
    summaries = oracle.summarize(ARTICLES)
    assert calls == [3, 3, 1]  # one generate per chunk of batch_size texts
    assert len(summaries) == 7 and all(isinstance(s, str) and len(s.split()) >= 3 for s in summaries)
    assert len(set(summaries)) > 1
    whole = load_seq2seq(saved_model, max_new_tokens=12, batch_size=32)
    assert whole.summarize(ARTICLES) == summaries
    # padding: a short text gives the same summary alone and beside longer texts
    short = "Fire destroys barn in Ashford."
    alone = oracle.summarize([short])[0]
    assert oracle.summarize([ARTICLES[0], short, ARTICLES[1]])[1] == alone


def test_over_long_texts_are_truncated_to_max_input_tokens(saved_model, tokenizer):
    oracle = load_seq2seq(saved_model, max_input_tokens=8, max_new_tokens=10)
    long_text = " ".join(ARTICLES[:3])
    head = " ".join(long_text.split()[:7])  # 7 words + the closing </s> = 8 tokens
    assert tokenizer(head)["input_ids"] == tokenizer(long_text, truncation=True, max_length=8)["input_ids"]
    assert oracle.summarize([long_text]) == oracle.summarize([head])
    np.testing.assert_allclose(oracle.embed([long_text]), oracle.embed([head]), atol=1e-6)
    untruncated = load_seq2seq(saved_model, max_input_tokens=512, max_new_tokens=10)
    assert not np.allclose(untruncated.embed([long_text]), oracle.embed([long_text]), atol=1e-4)


def test_embeddings_are_mask_aware_means_of_encoder_states(saved_model):
    oracle = load_seq2seq(saved_model, batch_size=4)
    short = "Fire destroys barn in Ashford."
    alone = oracle.embed([short])
    batch = oracle.embed([ARTICLES[0], short] + ARTICLES[1:])
    assert batch.shape == (8, 32) and batch.dtype == np.float32 and oracle.info["d_model"] == 32
    np.testing.assert_allclose(batch[1], alone[0], atol=1e-5)  # padding does not change it
    ids = oracle.tokenizer(short, return_tensors="pt")
    with torch.inference_mode():
        states = oracle.model.get_encoder()(**ids).last_hidden_state
    np.testing.assert_allclose(alone[0], states[0].mean(0).numpy(), atol=1e-5)
    assert oracle.embed([]).shape == (0, 32)


def test_a_different_observation_dim_is_a_fixed_gaussian_projection(saved_model):
    native = load_seq2seq(saved_model).embed(ARTICLES)
    projected = load_seq2seq(saved_model, observation_dim=10).embed(ARTICLES)
    again = load_seq2seq(saved_model, observation_dim=10).embed(ARTICLES)
    assert projected.shape == (7, 10)
    np.testing.assert_array_equal(projected, again)
    matrix = np.random.default_rng(0).normal(0.0, 1.0 / np.sqrt(10), size=(32, 10))
    np.testing.assert_allclose(projected, native @ matrix, rtol=1e-4, atol=1e-5)
    assert load_seq2seq(saved_model, observation_dim=32).embed(ARTICLES[:1]).shape == (1, 32)


def test_sentence_observation_uses_a_separate_local_embedder(saved_model, tmp_path, tokenizer):
    from transformers import BertConfig, BertModel

    torch.manual_seed(1)
    bert = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=48, pad_token_id=tokenizer.pad_token_id))
    bert.save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(tmp_path / "bert")
    oracle = load_seq2seq(saved_model, observation="sentence", embedder_path=str(tmp_path / "bert"), batch_size=2)
    out = oracle.embed(ARTICLES[:3])
    assert out.shape == (3, 24) and oracle.info["observation"] == "sentence"
    ids = tokenizer(ARTICLES[2], return_tensors="pt")
    with torch.inference_mode():
        direct = bert.eval()(**ids).last_hidden_state[0].mean(0).numpy()
    np.testing.assert_allclose(out[2], direct, atol=1e-5)


def test_input_prefix_goes_before_every_input_of_the_audited_model(saved_model):
    prefixed = load_seq2seq(saved_model, input_prefix="Fire destroys ", max_new_tokens=8)
    plain = load_seq2seq(saved_model, max_new_tokens=8)
    assert prefixed.summarize(ARTICLES[:2]) == plain.summarize(["Fire destroys " + a for a in ARTICLES[:2]])
    np.testing.assert_allclose(prefixed.embed(ARTICLES[:2]), plain.embed(["Fire destroys " + a for a in ARTICLES[:2]]), atol=1e-6)


def test_info_and_beam_search(saved_model):
    oracle = load_seq2seq(saved_model, num_beams=2, max_new_tokens=6)
    info = oracle.info
    assert info["path"] == saved_model and info["parameters"] == sum(p.numel() for p in oracle.model.parameters())
    assert info["num_beams"] == 2 and info["observation_dim"] == 32
    assert len(oracle.summarize(ARTICLES[:2])) == 2


def test_loading_and_settings_errors(saved_model, tmp_path):
    with pytest.raises(Seq2SeqError, match="model directory '/nonexistent/summarizer' does not exist"):
        load_seq2seq("/nonexistent/summarizer")
    with pytest.raises(Seq2SeqError, match="nothing is downloaded"):
        load_seq2seq("fadejax-tests/no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Seq2SeqError, match="cannot load the seq2seq model"):
        load_seq2seq(str(tmp_path / "empty"))
    for settings, message in [
        ({"num_beams": 0}, "num_beams must be a positive integer"),
        ({"max_new_tokens": -1}, "max_new_tokens must be a positive integer"),
        ({"batch_size": 1.5}, "batch_size must be a positive integer"),
        ({"observation": "pooler"}, "observation must be 'encoder_mean' or 'sentence'"),
        ({"observation": "sentence"}, "needs an embedder"),
        ({"observation_dim": 0}, "observation_dim must be a positive integer"),
    ]:
        with pytest.raises(Seq2SeqSettingsError, match=message):
            load_seq2seq(saved_model, **settings)
    oracle = load_seq2seq(saved_model)
    if oracle.model.config.model_type == "bart":  # learned positions: no more input tokens than positions
        with pytest.raises(Seq2SeqSettingsError, match="max_input_tokens 1024 exceeds the model's 512 positions"):
            load_seq2seq(saved_model, max_input_tokens=1024)
    with pytest.raises(Seq2SeqSettingsError, match="list of strings"):
        oracle.summarize("one text, not a list")
    with pytest.raises(Seq2SeqError, match="cannot be used here|not a torch device|device"):
        Seq2SeqOracle(oracle.model, oracle.tokenizer, device="cuda:7")


def test_word_tokenizer_round_trips_the_builtin_articles():
    data = builtin_articles("held_out", 100)
    tokenizer = build_word_tokenizer(data.articles + data.references)
    for text in data.articles + data.references:
        assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text
    ids = tokenizer("Ashford council approves Zorblax.")["input_ids"]
    assert tokenizer.unk_token_id in ids and ids[-1] == tokenizer.eos_token_id  # unknown words: <unk>; inputs end with </s>


def test_tiny_summarizer_is_trained_once_and_cached(tmp_path, monkeypatch):
    from bridges import tiny_summarizer

    monkeypatch.setenv("FADEJAX_CACHE", str(tmp_path))
    recipe = dict(tiny_summarizer.RECIPE, train_articles=64, d_model=32, d_ff=64, d_kv=8, num_layers=1, num_decoder_layers=1,
                  batch_size=16, epochs=1, warmup_steps=2, eval_articles=8)  # a test-only recipe: seconds, not minutes
    path = tiny_summarizer.ensure_tiny_summarizer(builtin_articles, bleu_batch, progress=False, recipe=recipe)
    assert path.parent == tmp_path / "models" and path.name.startswith("tiny-summarizer-")
    assert path == tiny_summarizer.model_dir(recipe) != tiny_summarizer.model_dir(dict(recipe, seed=1))
    info = tiny_summarizer.load_info(path)
    oracle = load_seq2seq(str(path), max_new_tokens=8)
    assert info["recipe"] == recipe and info["parameters"] == oracle.info["parameters"]
    assert 0.0 <= info["held_out_bleu"] <= 1.0 and info["train_seconds"] > 0
    assert type(oracle.model).__name__ == "T5ForConditionalGeneration" and oracle.info["d_model"] == 32
    assert len(oracle.summarize(builtin_articles("held_out", 2).articles)) == 2
    monkeypatch.setattr(tiny_summarizer, "train", lambda *a, **k: pytest.fail("the cached model was trained again"))
    assert tiny_summarizer.ensure_tiny_summarizer(builtin_articles, bleu_batch, progress=False, recipe=recipe) == path
    assert not list((tmp_path / "models").glob("*.tmp*"))
