"""The generated-conditions audit (Chegini & Feizi's setting, searched) on a tiny random
diffusion pipeline and CLIP built offline and a tiny RGB classifier (a family of two):
config errors named, invalid images never failures, discovery with regenerable images
through the CLI, and `fadejax describe` naming each real failure's condition."""

import json
import shutil
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from tiny_classifier import make_tiny_classifier
from tiny_diffusion import make_tiny_clip, make_tiny_pipeline

from fadejax.cli import main
from fadejax.engine.config import ConfigError, load_config, parse_config
from fadejax.engine.store.records import read_records, records_path
from records_tee import assert_columns_hold_the_lines, both_formats

CLASSES = ["cat", "dog", "bird"]
CONDITIONS = ["in the snow", "on the grass", "at night"]
STYLES = ["photo", "painting"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Tiny pipeline and CLIP, two tiny classifiers, a folder of 16x16 held-out images of the
    three classes, and a config of the family."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("conditions")
    pipeline, clip = make_tiny_pipeline(root / "pipeline"), make_tiny_clip(root / "clip")
    rng = np.random.default_rng(0)
    for split, count in (("data", 6), ("train", 4)):
        for name in CLASSES:
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / split / name / f"{i}.png")
    member = lambda seed: {"source": "file", "architecture": "tiny_classifier:TinyRGB",  # noqa: E731
                           "architecture_kwargs": {"num_classes": 3, "image_size": 16},
                           "weights": str(make_tiny_classifier(root / f"tiny{seed}.safetensors", seed))}
    data = {
        "name": "conditions-test", "task": "conditions",
        "data": {"source": "folder", "path": str(root / "data"), "image_size": 16},
        "models": [{"name": "first", **member(0)}, {"name": "second", **member(1)}],
        "space": {"axes": [{"name": "class", "values": CLASSES}, {"name": "condition", "values": CONDITIONS}]},
        "conditions": {"pipeline": str(pipeline), "clip": str(clip), "steps": 2, "height": 16, "width": 16, "batch_size": 8,
                       "templates": ["a photo of a {class} {condition}", "a picture of a {class}, {condition}"],
                       "visible_top_k": 2, "vocabulary": {"cat": CONDITIONS, "dog": CONDITIONS[:2], "bird": ["at night"]},
                       "train_data": str(root / "train")},
        "searcher": {"kind": "random"},
        "run": {"iterations": 2, "num_envs": 6, "checkpoint_every": 1, "tensorboard": False},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    yield root, path, data
    torch.set_num_threads(threads)


@pytest.mark.parametrize("change, message", [
    ({"conditions": {"clip": "c"}}, "conditions.pipeline: a local diffusers pipeline directory is needed"),
    ({"conditions": {"pipeline": "p", "clip": "c", "templates": ["a {class}"]}}, "does not use {condition}"),
    ({"conditions": {"pipeline": "p", "clip": "c", "vocabulary": {"cat": ["on the moon"]}}}, "['on the moon'] not among the condition axis"),
    ({"conditions": {"pipeline": "p", "clip": "c", "visible_top_k": 5}}, "visible_top_k: 5 is more than the 3 class words"),
    ({"space": {"axes": [{"name": "condition", "values": CONDITIONS}, {"name": "class", "values": CLASSES}]}},
     "word axes are 'class' then 'condition', then any further ones"),
    ({"space": {"axes": [{"name": "class", "values": CLASSES}, {"name": "condition", "values": CONDITIONS}, {"name": "style", "values": [1, 2]}]}},
     "'style' needs words"),
    ({"space": {"axes": [{"name": "class", "values": CLASSES}, {"name": "condition", "values": CONDITIONS}, {"name": "style", "values": STYLES}]}},
     "conditions.templates: prompt template 'a photo of a {class} {condition}' does not use {style}"),
    ({"conditions": {"pipeline": "p", "clip": "c", "templates": ["a {style} of a {class} {condition}"]},
      "space": {"axes": [{"name": "class", "values": CLASSES}, {"name": "condition", "values": CONDITIONS}, {"name": "style", "values": STYLES}]}},
     "conditions.describe_template: prompt template 'a {style} of a {class} {condition}' uses unknown {style}"),
])
def test_a_bad_conditions_config_names_its_field(change, message):
    data = {"task": "conditions", "conditions": {"pipeline": "p", "clip": "c"},
            "space": {"axes": [{"name": "class", "values": CLASSES}, {"name": "condition", "values": CONDITIONS}]}, **change}
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("{", r"\{").replace("}", r"\}")):
        parse_config(data)


class Generator:
    """Random images whose first pixel names the prompt's class (what the stub CLIP sees); the
    second image is blank (a safety-checker black image) and the third looks like a bird."""

    def generate(self, prompts, seeds):
        images = np.stack([np.random.default_rng(s % 2**32).integers(0, 256, (16, 16, 3), dtype=np.uint8) for s in seeds])
        images[:, 0, 0, 0] = [next(i for i, c in enumerate(CLASSES) if f" {c} " in f"{p} ") for p in prompts]
        images[1] = 0
        images[2, 0, 0, 0] = CLASSES.index("bird")
        return images


class Scorer:
    """CLIP that sees the class an image's first pixel names."""

    def text_embeddings(self, texts):
        return np.ones((len(texts), 4), np.float32)

    def zero_shot(self, images, prompts):
        probs = np.full((len(images), len(prompts)), 0.1, np.float32)
        probs[np.arange(len(images)), images[:, 0, 0, 0]] = 0.8
        return probs


def test_invalid_images_are_never_failures_and_every_seed_is_recorded(setup, tmp_path):
    from fadejax.audits.conditions.task import AUDIT, build_condition_task, generation_seed

    _, path, _ = setup
    config = load_config(path, ["conditions.visible_top_k=1"])
    single = parse_config({**config.model_dump(mode="json"), "models": [],
                           "model": {k: v for k, v in config.models.member("first").model_dump(mode="json").items()}})

    def wrong(x):  # every answer is label 0, bird (the folder's classes sort as bird, cat, dog): cats and dogs fail
        return np.tile(np.asarray([[5.0, 0.0, 0.0]], np.float32), (x.shape[0], 1))

    task = build_condition_task(single, oracle=wrong, generator=Generator(), scorer=Scorer(), progress=False)
    assert task.class_labels.tolist() == [1, 2, 0]  # cat, dog, bird: matched to the folder's class names
    task.attach_run_dir(tmp_path)
    cells = np.asarray([[0, 0], [0, 1], [0, 2], [2, 0], [1, 1]])  # cat, cat (blank), cat (CLIP sees a bird), bird, dog
    core, fields = task.evaluate(None, {"sample": np.zeros(5, np.int32), "cell": cells, "iteration": np.int32(7)})
    assert fields["valid"].tolist() == [True, False, False, True, True]
    assert fields["blank"].tolist() == [False, True, False, False, False]
    assert core["failed"].tolist() == [True, False, False, False, True]  # the bird is answered right; invalid ones never fail
    assert core["reward"][1] == core["reward"][2] == -1.0 and core["reward"][0] > 0
    assert fields["seed"] == [generation_seed(single.run.seed, AUDIT, 7, env) for env in range(5)]
    assert fields["prompt"][0] == "a photo of a cat in the snow" and (tmp_path / "images" / "it000007-env0001.png").is_file()


@pytest.fixture(scope="module")
def family_run(setup):
    root, path, _ = setup
    out = root / "run"
    with both_formats():  # the columnar records are checked against the JSON lines of the same queries
        assert main(["discover", "--config", str(path), "--out", str(out), "--quiet"]) == 0
    return out


def test_the_conditions_audit_s_columnar_records_hold_its_json_lines(family_run, tmp_path):
    assert_columns_hold_the_lines(family_run, tmp_path)


def test_a_family_discovers_through_the_cli_with_regenerable_images(setup, family_run, capsys):
    from bridges.diffusion import load_diffusion

    records = list(read_records(records_path(family_run)))
    assert len(records) == 2 * 6
    for r in records:
        assert r["prompt"] in {t.format(**{"class": r["concepts"]["class"], "condition": r["concepts"]["condition"]})
                               for t in ("a photo of a {class} {condition}", "a picture of a {class}, {condition}")}
        for name in ("first", "second"):
            assert not r[f"{name}.failed"] or r["valid"]  # an invalid image fails no model
            assert r[f"{name}.failed"] == (r["valid"] and r[f"{name}.predicted"] != r["label"])
        assert r["failed"] == (r["valid"] and r["first.failed"] and r["second.failed"])  # mean of two: more than half fail
    record = records[3]
    again = load_diffusion(str(setup[0] / "pipeline"), steps=2, height=16, width=16).generate([record["prompt"]], [record["seed"]])[0]
    saved = np.asarray(Image.open(family_run / "images" / record["image"]).convert("RGB"))
    assert np.abs(again.astype(int) - saved.astype(int)).max() <= 1
    # summarize, compare and the landscape's refusal: tests/test_cli_matrix.py (conditions-macro)


def test_describe_names_each_failures_condition_and_splits_the_debug_set(setup, capsys):
    from bridges.clip_scorer import load_clip
    from fadejax.audits.conditions.describe import as_uint8_rgb
    from fadejax.audits.image.data import load_folder

    root, path, data = setup
    assert main(["describe", "--config", str(path), "--out", str(root / "d0")]) == 2  # a family: which model?
    assert "name the model whose failures to describe with --model, one of ['first', 'second']" in capsys.readouterr().err
    assert main(["describe", "--config", str(Path(__file__).parents[1] / "configs" / "digits.yaml"), "--out", str(root / "d1")]) == 2  # another audit
    err = capsys.readouterr().err
    assert "the 'image' audit does not describe failures in words" in err and len(err.strip().splitlines()) == 1
    assert not (root / "d0").exists() and not (root / "d1").exists()

    assert main(["describe", "--config", str(path), "--model", "second", "--top", "2", "--out", str(root / "d")]) == 0
    printed = capsys.readouterr().out
    report = json.loads((root / "d" / "describe.json").read_text())
    seed, held = set(report["debug_seed"]), set(report["debug_held_out"])
    described = [a["index"] for a in report["assignments"]]
    assert report["described"] == report["failures"] > 0  # every class is on the class axis
    assert not seed & held and seed | held == set(described)
    for a in report["assignments"]:
        assert a["condition"] in data["conditions"]["vocabulary"][a["class"]] and a["predicted"] != a["label"]
        assert (root / "d" / a["image"]).is_file()
    cats = [a for a in report["assignments"] if a["class"] == "cat"]  # three candidates: CLIP's argmax, checked directly
    assert cats, "the seeded classifier misclassifies a cat"
    held_out = load_folder(data["data"]["path"], 16)
    scorer = load_clip(data["conditions"]["clip"])
    prompts = {c: f"a photo of a cat {c}" for c in CONDITIONS}
    probs = scorer.zero_shot(as_uint8_rgb(held_out.images[[a["index"] for a in cats]]), prompts)
    assert [a["condition"] for a in cats] == [CONDITIONS[i] for i in probs.argmax(1)]
    birds = [a for a in report["assignments"] if a["class"] == "bird"]
    assert all(a["condition"] == "at night" and a["probability"] == 1.0 for a in birds)  # one candidate
    assert sum(p["seed_failures"] + p["held_out_failures"] for p in report["pairs"]) == len(described)
    counts = [p["seed_failures"] for p in report["pairs"]]
    assert counts == sorted(counts, reverse=True)
    top = report["pairs"][0]
    assert f"1. {top['class']} {top['condition']}: {top['seed_failures']} debug-seed" in printed
    assert "| 1 | " + top["class"] in (root / "d" / "describe.md").read_text()

    # the same vocabulary from a file; a file naming an unknown condition is refused in one line, before any model loads
    (root / "vocabulary.yaml").write_text(yaml.safe_dump(data["conditions"]["vocabulary"]))
    assert main(["describe", "--config", str(path), "--model", "second", "--out", str(root / "d2"),
                 "--set", f"conditions.vocabulary={root / 'vocabulary.yaml'}"]) == 0
    assert json.loads((root / "d2" / "describe.json").read_text())["assignments"] == report["assignments"]
    (root / "bad.yaml").write_text(yaml.safe_dump({"cat": ["on the moon"]}))
    capsys.readouterr()
    assert main(["describe", "--config", str(path), "--model", "second", "--out", str(root / "d3"),
                 "--set", f"conditions.vocabulary={root / 'bad.yaml'}"]) == 2
    err = capsys.readouterr().err
    assert "['on the moon'] not among the condition axis' words" in err and len(err.strip().splitlines()) == 1


def test_describe_names_the_failures_an_image_audit_run_of_the_classifier_found(setup, capsys):
    """``describe --run``: the distinct failing (sample, cell) pairs of an image-audit run of
    the same classifier, each image regenerated, at most --max-failures of them; a run of
    another classifier, or one naming code without --trust-code, is refused in one line."""
    import jax
    import jax.numpy as jnp

    from fadejax.audits.conditions.describe import as_uint8_rgb
    from fadejax.engine.build import build_task

    root, path, data = setup
    first = data["models"][0]
    model = {**{k: v for k, v in first.items() if k != "name"}, "refuse_chance": False}  # a seeded random classifier, on purpose
    image_run = {"name": "perturbed", "data": data["data"], "model": model,
                 "space": {"axes": [{"name": "darkness", "values": [0.0, 0.9]}, {"name": "blur", "values": [0.0, 2.0]}]},
                 "searcher": {"kind": "random"}, "run": {"iterations": 2, "num_envs": 8, "checkpoint_every": 1, "tensorboard": False}}
    (root / "image_run.yaml").write_text(yaml.safe_dump(image_run))
    run = root / "image_run"
    assert main(["discover", "--config", str(root / "image_run.yaml"), "--out", str(run), "--quiet"]) == 0
    records = list(read_records(records_path(run)))
    distinct = {(r["sample"], r["cell"]): r for r in records if r["failed"]}
    assert len(distinct) > 3, "the seeded classifier fails on some perturbed images"
    capsys.readouterr()

    # the user's own run is trusted (fadejax.engine.store.trust); the same run shared elsewhere (a copy) is not
    shared = root / "shared_run"
    shutil.copytree(run, shared)
    argv = ["describe", "--config", str(path), "--run", str(shared), "--max-failures", "3", "--quiet"]
    for extra, message in ((["--model", "first"], "only with --trust-code"),
                           (["--model", "second", "--trust-code"], "audited another classifier than this config's (model.weights: run")):
        assert main(argv + extra + ["--out", str(root / "refused")]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    (root / "unstarted").mkdir()
    (root / "unstarted" / "config.yaml").write_text((run / "config.yaml").read_text())
    assert main(["describe", "--config", str(path), "--run", str(root / "unstarted"), "--model", "first", "--trust-code",
                 "--out", str(root / "refused"), "--quiet"]) == 2
    assert "has no records" in capsys.readouterr().err
    assert not (root / "refused").exists()

    assert main(argv + ["--model", "first", "--trust-code", "--out", str(root / "from_run")]) == 0, capsys.readouterr().err
    report = json.loads((root / "from_run" / "describe.json").read_text())
    assert report["source"] == "run" and report["failures"] == len(distinct) and report["left_out"] == len(distinct) - 3
    assert report["failure_records"] == sum(r["failed"] for r in records)
    described = report["assignments"]
    assert len(described) == report["described"] == 3 and [a["index"] for a in described] == [0, 1, 2]
    task = build_task(load_config(root / "image_run.yaml"), progress=False)
    for a in described:
        r = distinct[(a["sample"], a["cell"])]
        assert (a["label"], a["predicted"], a["concepts"]) == (r["label"], r["predicted"], r["concepts"]) and a["predicted"] != a["label"]
        assert a["condition"] in data["conditions"]["vocabulary"][a["class"]]
        expected = task.prepare(jnp.asarray([a["sample"]]), task.space.decode(jnp.asarray([a["cell"]])), jax.random.PRNGKey(0))
        saved = np.asarray(Image.open(root / "from_run" / a["image"]).convert("RGB"))
        assert np.array_equal(saved, as_uint8_rgb(np.asarray(expected))[0])  # the failing image itself, regenerated
    assert set(report["debug_seed"]) | set(report["debug_held_out"]) == {0, 1, 2}
    assert "distinct failing (held-out sample, cell) pairs in the discovery run" in (root / "from_run" / "describe.md").read_text()


def test_a_further_word_axis_fills_every_prompt_and_describe_names_each_pairs_cells():
    """A ``style`` axis after class and condition: a valid config with a describe
    template; a mode's prompts carry its three words; a (class, condition) pair stands
    for one cell per style."""
    from fadejax.audits.conditions.restructure import mode_prompts

    config = parse_config({"task": "conditions", "conditions": {"pipeline": "p", "clip": "c", "templates": ["a {style} of a {class} {condition}"],
                                                                 "describe_template": "a photo of a {class} {condition}"},
                           "space": {"axes": [{"name": "class", "values": CLASSES}, {"name": "condition", "values": CONDITIONS},
                                              {"name": "style", "values": STYLES}]}})
    space = config.concept_space()
    mode = int(np.ravel_multi_index((1, 2, 1), space.sizes))  # dog, at night, painting
    prompts, classes = mode_prompts(space, [mode, 0], config.conditions.templates[0], 2)
    assert prompts == ["a painting of a dog at night"] * 2 + ["a photo of a cat in the snow"] * 2 and classes == [1, 1, 0, 0]
    assert mode_prompts(space, [mode], config.conditions.class_prompt, 1) == (["a photo of a dog"], [1])


def _built_to_match(scorer, prompts: list[str], target: int, seed: int) -> np.ndarray:
    """A 32x32 uint8 image made by gradient ascent so that ``scorer``'s CLIP prefers
    ``prompts[target]`` among ``prompts`` (CLIP's own preprocessing, 32x32 in, replayed in torch)."""
    text = torch.from_numpy(scorer.text_embeddings(prompts))
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (scorer.image_processor.image_mean, scorer.image_processor.image_std))
    logits = torch.zeros(1, 3, 32, 32)
    torch.manual_seed(seed)
    logits.normal_().requires_grad_(True)
    optimizer = torch.optim.Adam([logits], lr=0.1)
    for _ in range(60):
        features = scorer.model.get_image_features(pixel_values=(torch.sigmoid(logits) - mean) / std)
        features = getattr(features, "pooler_output", features)
        similarity = torch.nn.functional.normalize(features, dim=-1) @ text.T
        loss = torch.nn.functional.cross_entropy(similarity * 100.0, torch.tensor([target]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return np.rint(torch.sigmoid(logits).detach()[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def test_each_failure_gets_the_condition_its_image_was_built_to_match(setup):
    """CLIP's zero-shot choice among a class's candidates (the tiny CLIP itself), on images
    built by gradient ascent to match one condition each; a class with one candidate needs
    no CLIP."""
    from bridges.clip_scorer import load_clip
    from fadejax.audits.conditions.describe import assign_conditions

    _, _, data = setup
    scorer = load_clip(data["conditions"]["clip"])
    vocabulary = {"cat": CONDITIONS, "dog": CONDITIONS[:2], "bird": ["at night"]}
    built = [("cat", "at night"), ("cat", "in the snow"), ("dog", "on the grass"), ("bird", "at night"), ("cat", "on the grass"), ("dog", "in the snow")]
    template = "a photo of a {class} {condition}"
    with torch.enable_grad():
        images = np.stack([_built_to_match(scorer, [template.format(**{"class": c, "condition": w}) for w in vocabulary[c]],
                                           vocabulary[c].index(condition), seed) for seed, (c, condition) in enumerate(built)])
    assigned, probability = assign_conditions(scorer, images, [c for c, _ in built], vocabulary, template)
    assert assigned == [condition for _, condition in built]
    assert probability[3] == 1.0 and all(1 / len(vocabulary[c]) < p < 1.0 for p, (c, _) in zip(probability, built) if c != "bird")


def _tiny_language_models(root: Path) -> tuple[str, str]:
    """A tiny random GPT-2 and T5 over a word-level tokenizer of condition-like words."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from bridges.tiny_summarizer import build_model, build_word_tokenizer

    tokenizer = build_word_tokenizer(["a photo of a cat dog bird in on at the snow grass night beach rain fog sofa desert water forest"])
    torch.manual_seed(0)
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=16, n_layer=1, n_head=2,
                                     bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id))
    t5 = build_model(tokenizer, {"d_model": 16, "d_ff": 32, "d_kv": 8, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 2, "seed": 0})
    for name, model in (("gpt", gpt), ("t5", t5)):
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    return str(root / "gpt"), str(root / "t5")


def test_a_local_language_model_proposes_conditions_into_a_new_valid_config(setup, capsys):
    from fadejax.audits.conditions.propose import clean_proposal

    assert clean_proposal("A photo of a dog on the Beach. It is sunny", "a photo of a dog", 5) == "on the beach"
    assert clean_proposal(' "in {the} snow", with friends', "", 5) == "in the snow, with friends"
    assert clean_proposal("at night under a very bright full moon", "", 3) == "at night under"
    assert clean_proposal(" 42 ... ", "", 5) is None

    root, path, data = setup
    gpt, t5 = _tiny_language_models(root / "language")
    out = root / "proposed.yaml"
    argv = ["propose-conditions", "--config", str(path), "--per-class", "3", "--quiet"]
    assert main(argv + ["--generator", gpt, "--out", str(out)]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    config = load_config(out)  # valid, as written
    conditions = [str(v) for v in config.space.axes[1].values]
    assert conditions[:3] == CONDITIONS and [str(v) for v in config.space.axes[0].values] == CLASSES
    for word in CLASSES:
        before = data["conditions"]["vocabulary"][word]
        after = config.conditions.vocabulary[word]
        new = after[len(before):]
        assert after[: len(before)] == before and 1 <= len(new) <= 3 and len(set(new)) == len(new)
        assert all(p == p.lower() and 1 <= len(p.split()) <= 5 and p not in before and set(new) <= set(conditions) for p in new)
        assert f"{word}: {', '.join(new)}" in printed
    assert set(conditions) == set(CONDITIONS) | {p for w in CLASSES for p in config.conditions.vocabulary[w]}

    again = root / "again.yaml"
    assert main(argv + ["--generator", gpt, "--out", str(again)]) == 0
    assert again.read_text() == out.read_text()  # the same seed proposes the same
    assert main(argv + ["--generator", t5, "--out", str(root / "t5.yaml"), "--seed", "3"]) == 0  # an encoder-decoder answers
    assert len(load_config(root / "t5.yaml").space.axes[1].values) > len(CONDITIONS)

    written = out.read_text()
    capsys.readouterr()
    for extra, message in ((["--generator", gpt, "--out", str(out)], "exists; name a new file"),
                           (["--generator", str(root / "nowhere"), "--out", str(root / "x.yaml")], "could not be loaded"),
                           (["--generator", gpt, "--out", str(root / "x.yaml"), "--prompt", "a {kind}"], "--prompt:")):
        assert main(argv + extra) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert out.read_text() == written and not (root / "x.yaml").exists()
    assert main(["propose-conditions", "--config", str(Path(__file__).parents[1] / "configs" / "digits.yaml"),
                 "--generator", gpt, "--out", str(root / "x.yaml")]) == 2
    assert "extends a generated-conditions config" in capsys.readouterr().err


def test_restructure_fixes_every_models_head_with_generated_data_beside_the_random_baseline(setup, family_run, monkeypatch, capsys):
    from safetensors.torch import load_file

    from tiny_classifier import TinyRGB

    root, _, data = setup
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))  # the fine-tuner's process imports TinyRGB
    out = root / "fixed"
    argv = ["restructure", str(family_run), "--modes", "0", "--modes", "4", "--epochs", "3", "--images-per-mode", "2",
            "--eval-images-per-mode", "2", "--out", str(out), "--trust-code"]
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads((out / "shift_report.json").read_text())
    g = report["generated"]
    searched = {r["seed"] for r in read_records(records_path(family_run))}
    sets = [set(g["seeds"][name]) for name in ("generated", "random", "eval")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2] or searched & (sets[0] | sets[1] | sets[2]))
    assert g["images"] == g["random_baseline_images"] == len(g["seeds"]["generated"]) > 0  # the same image budget
    fixed, baseline = np.load(out / "generated" / "generated.npz"), np.load(out / "generated" / "random.npz")
    assert sorted(fixed["labels"].tolist()) == sorted(baseline["labels"].tolist())  # ... of the same classes
    assert all(p in ("a photo of a cat", "a photo of a dog") for p in g["prompts"]["random"])
    assert set(g["prompts"]["generated"]) <= {"a photo of a cat in the snow", "a photo of a dog on the grass"}
    assert report["lambda"] == 0.5 and "L_original + 0.5 · L_generated" in (out / "shift_report.md").read_text()
    spec = json.loads((Path(report["fine_tune"]["first/generated"]["model"]).parent / "spec.json").read_text())
    assert spec["hyper"]["weight_decay"] == 5e-4 and report["settings"]["weight_decay"] == 5e-4  # the paper's
    assert set(report["models"]) == {"first", "second"}  # no --model: the whole family, one generated set
    held = np.load(out / "generated" / "eval.npz")
    for name, seed in (("first", 0), ("second", 1)):
        base = load_file(data["models"][seed]["weights"])
        tuned = load_file(report["fine_tune"][f"{name}/generated"]["model"])
        assert sorted(k for k in base if not np.array_equal(base[k].numpy(), tuned[k].numpy())) == ["head.bias", "head.weight"]
        model = TinyRGB(3, 16)
        model.load_state_dict(tuned)
        with torch.no_grad():
            predicted = model(torch.from_numpy(held["images"]).permute(0, 3, 1, 2)).argmax(-1).numpy()
        assert report["models"][name]["generated"]["generated_held_out_accuracy"] == pytest.approx(float(np.mean(predicted == held["labels"])))
        assert f"| {name} | clean held-out |" in (out / "shift_report.md").read_text()
    assert [m["cell"] for m in report["modes"]] == [0, 4]
    assert json.loads((out / "rediscovery" / "run.json").read_text())["status"] == "complete"
    capsys.readouterr()
    assert main(["compare", str(family_run), str(out / "rediscovery"), "--out", str(root / "compared"), "--trust-code"]) == 0
    assert (root / "compared" / "compare.html").is_file() and (root / "compared" / "compare.png").is_file()
