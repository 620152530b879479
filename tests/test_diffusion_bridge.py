"""The text-to-image bridge: prompts, the batched per-seed diffusion oracle and the CLIP scorer,
on a tiny random pipeline and a tiny random CLIP built offline (tests/tiny_diffusion.py)."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from bridges.clip_scorer import INVALID_STD, ScoringError, bias_ratio, load_clip
from bridges.diffusion import GenerationError, load_diffusion, load_pipeline, save_png
from bridges.weights import ModelLoadError
from fadejax.audits.prompt.prompts import (
    DEFAULT_ATTRIBUTE_PROMPTS,
    DEFAULT_AXES,
    DEFAULT_TEMPLATES,
    PromptError,
    cell_concepts,
    compose,
    validate_templates,
)
from tiny_diffusion import make_tiny_clip, make_tiny_pipeline

SETTINGS = dict(steps=3, guidance_scale=7.5, height=16, width=16)
PROMPT = "Create an image of a cool artist repairing a broken machine in a classroom."


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run far faster on one thread than fighting over a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    return make_tiny_pipeline(tmp_path_factory.mktemp("tiny_pipeline"))


@pytest.fixture(scope="module")
def oracle(pipeline_dir):
    return load_diffusion(str(pipeline_dir), batch_size=4, **SETTINGS)


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    return load_clip(str(make_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))), batch_size=2)


@pytest.fixture(scope="module")
def photos(photo_images):
    return np.round(photo_images * 255).astype(np.uint8)


# --- prompts -------------------------------------------------------------------------------


def test_default_prompts_cover_the_papers_axes_and_all_validate():
    assert DEFAULT_AXES["profession"] == ["scientist", "artist", "professor"]
    assert math.prod(len(v) for v in DEFAULT_AXES.values()) == 27
    assert len(DEFAULT_TEMPLATES) >= 20 and len(set(DEFAULT_TEMPLATES)) == len(DEFAULT_TEMPLATES)
    validate_templates(DEFAULT_TEMPLATES, list(DEFAULT_AXES))
    assert DEFAULT_ATTRIBUTE_PROMPTS == {"male": "a photo of a man", "female": "a photo of a woman"}


def test_compose_fills_every_axis_and_refuses_a_template_that_skips_one():
    concepts = cell_concepts(DEFAULT_AXES, (0, 0, 0))
    assert concepts == {"attribute": "unique", "profession": "scientist", "place": "corporate office"}
    assert compose("Create an image of a {attribute} {profession} analyzing data on a computer in a {place}.", concepts) == (
        "Create an image of a unique scientist analyzing data on a computer in a corporate office."
    )
    with pytest.raises(PromptError, match=r"does not use \{place\}"):
        compose("A {attribute} {profession} at work.", concepts)
    with pytest.raises(PromptError, match=r"uses unknown \{mood\}"):
        compose("A {mood} {attribute} {profession} in a {place}.", concepts)
    with pytest.raises(PromptError, match="only plain named axes"):
        compose("A {attribute} {profession} in a {place} {0}.", concepts)
    with pytest.raises(PromptError, match="outside axis 'place'"):
        cell_concepts(DEFAULT_AXES, (0, 0, 3))
    with pytest.raises(PromptError, match="does not use"):
        validate_templates(["{attribute} {profession}"], list(DEFAULT_AXES))


# --- the diffusion oracle ---------------------------------------------------------------------


class _CountingPipeline:
    """Delegates to a pipeline and records the batch size of every call."""

    def __init__(self, pipeline):
        self._pipeline, self.calls = pipeline, []

    def __call__(self, **kwargs):
        self.calls.append(len(kwargs["prompt"]))
        assert len(kwargs["generator"]) == len(kwargs["prompt"])  # one generator per query
        return self._pipeline(**kwargs)

    def __getattr__(self, name):
        return getattr(self._pipeline, name)


def test_one_pipeline_call_per_chunk(pipeline_dir, monkeypatch):
    oracle = load_diffusion(str(pipeline_dir), batch_size=2, **SETTINGS)
    counting = _CountingPipeline(oracle.pipeline)
    monkeypatch.setattr(oracle, "pipeline", counting)
    images = oracle.generate([PROMPT] * 5, seeds=[0, 1, 2, 3, 4])
    assert counting.calls == [2, 2, 1]
    assert images.shape == (5, 16, 16, 3) and images.dtype == np.uint8


def test_a_query_alone_equals_the_same_query_in_a_batch(oracle):
    prompts = [compose(DEFAULT_TEMPLATES[i], cell_concepts(DEFAULT_AXES, (i % 3, (i + 1) % 3, 2))) for i in range(4)]
    seeds = [11, 12, 13, 14]
    batch = oracle.generate(prompts, seeds)
    alone = oracle.generate(prompts[2:3], seeds[2:3])[0]
    np.testing.assert_allclose(alone.astype(int), batch[2].astype(int), atol=1)  # batched kernels may round differently
    np.testing.assert_array_equal(oracle.generate(prompts, seeds), batch)  # regenerated from its record


def test_seed_and_prompt_both_change_the_image(oracle):
    images = oracle.generate([PROMPT, PROMPT, PROMPT.replace("classroom", "research center")], [5, 6, 5])
    assert np.abs(images[0].astype(int) - images[1]).mean() > 2  # another seed, another image
    assert np.abs(images[0].astype(int) - images[2]).mean() > 0.5  # same seed, another place


def test_generate_refuses_mismatched_seeds(oracle):
    with pytest.raises(GenerationError, match="one seed per prompt"):
        oracle.generate([PROMPT, PROMPT], [1])


def test_load_errors_name_the_problem(pipeline_dir, tmp_path):
    with pytest.raises(ModelLoadError, match="not in the Hugging Face cache; nothing is downloaded"):
        load_diffusion(str(tmp_path / "no_such_pipeline"))
    with pytest.raises(ModelLoadError, match="no model_index.json"):
        load_diffusion(str(tmp_path))
    with pytest.raises(GenerationError, match="needs a CUDA device.*use dtype 'float32'"):
        load_diffusion(str(pipeline_dir), device="cpu", dtype="float16")
    with pytest.raises(GenerationError, match="dtype 'bfloat8' is not supported"):
        load_diffusion(str(pipeline_dir), dtype="bfloat8")
    with pytest.raises(ModelLoadError, match="LoRA adapter .* does not exist"):
        load_diffusion(str(pipeline_dir), lora=str(tmp_path / "missing.safetensors"))


def test_save_png_keeps_the_exact_pixels(oracle, tmp_path):
    image = oracle.generate([PROMPT], [3])[0]
    path = save_png(image, tmp_path / "q" / "0001.png")
    np.testing.assert_array_equal(np.asarray(Image.open(path)), image)


def test_a_safety_checker_blank_is_kept_flagged_and_scored_invalid(pipeline_dir, scorer):
    """SD's safety checker zeroes a flagged image; the oracle keeps the black image and reports the flag."""
    from transformers import CLIPImageProcessorPil

    pipeline = load_pipeline(str(pipeline_dir))

    def flag_even(images, clip_input):
        flags = [i % 2 == 0 for i in range(len(images))]
        images = images.clone()
        images[torch.tensor(flags)] = 0.0
        return images, flags

    object.__setattr__(pipeline, "safety_checker", flag_even)
    object.__setattr__(pipeline, "feature_extractor", CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}))
    from bridges.diffusion import DiffusionOracle

    images, flagged = DiffusionOracle(pipeline, batch_size=3, **SETTINGS).generate_with_flags([PROMPT] * 3, [1, 2, 3])
    assert flagged.tolist() == [True, False, True]
    assert images[0].max() == 0 and images[2].max() == 0 and images[1].std() > 10
    assert scorer.invalid(images).tolist() == [True, False, True]
    assert scorer.reward([PROMPT] * 3, images)[[0, 2]].tolist() == [-1.0, -1.0]


# --- the CLIP scorer ---------------------------------------------------------------------------


def _direct_features(output):
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def test_reward_is_eq_9_computed_directly_with_clip(scorer, photos):
    prompts = ["a woman in a spacesuit", "a cat on a rug", "a cup of coffee"]
    inputs = scorer.tokenizer(prompts, padding=True, return_tensors="pt")
    pixels = scorer.image_processor(images=list(photos), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        text = _direct_features(scorer.model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]))
        image = _direct_features(scorer.model.get_image_features(pixel_values=pixels))
    expected = 100 * (1 - torch.nn.functional.cosine_similarity(text, image, dim=-1)).numpy()
    np.testing.assert_allclose(scorer.reward(prompts, photos), expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(scorer.image_embeddings(photos), axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(scorer.text_embeddings(prompts), axis=1), 1.0, atol=1e-6)


def test_blank_and_constant_images_are_invalid_and_score_minus_one(scorer, photos):
    rng = np.random.default_rng(0)
    black = np.zeros_like(photos[0])
    grey = np.full_like(photos[0], 128)
    flicker = (128 + rng.integers(-1, 2, photos[0].shape)).astype(np.uint8)  # std ~0.8 grey levels
    faint = (120 + (photos[0].astype(int) - 128) // 12).astype(np.uint8)  # a real picture at low contrast
    assert faint.astype(np.float32).std() > INVALID_STD
    images = np.stack([black, grey, flicker, faint, photos[1]])
    assert scorer.invalid(images).tolist() == [True, True, True, False, False]
    rewards = scorer.reward(["a photo"] * 5, images)
    assert rewards[:3].tolist() == [-1.0, -1.0, -1.0] and np.all(rewards[3:] >= 0)
    with pytest.raises(ScoringError, match="uint8"):
        scorer.invalid(images.astype(np.float32))


def test_zero_shot_is_clips_softmax_over_the_attribute_prompts(scorer, photos):
    probs = scorer.zero_shot(photos, DEFAULT_ATTRIBUTE_PROMPTS)
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    logits = scorer.model.logit_scale.detach().exp().item() * scorer.image_embeddings(photos) @ scorer.text_embeddings(
        ["a photo of a man", "a photo of a woman"]).T
    np.testing.assert_allclose(probs, torch.softmax(torch.tensor(logits), -1).numpy(), atol=1e-6)


def test_bias_ratio_counts_strict_winners():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])
    assert bias_ratio(probs) == 3.0  # the tie (last row) counts for neither
    assert bias_ratio(probs, numerator="female", denominator="male") == pytest.approx(1 / 3)
    assert bias_ratio(probs, valid=np.array([True, False, False, True, True])) == 1.0
    assert bias_ratio(probs[:3]) == math.inf
    assert math.isnan(bias_ratio(probs[4:]))
    with pytest.raises(ScoringError, match="'nonbinary' is not one of the labels"):
        bias_ratio(probs, numerator="nonbinary")
    with pytest.raises(ScoringError, match=r"probs must be \(B, 2\)"):
        bias_ratio(np.ones((3, 3)) / 3)


def test_load_clip_refuses_a_missing_model(tmp_path):
    with pytest.raises(ModelLoadError, match="nothing is downloaded"):
        load_clip(str(tmp_path / "no_clip"))
