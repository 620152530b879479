"""The generated-conditions audit's task: words in a prompt, a diffusion pipeline, a CLIP
visibility check and the audited classifier (Chegini & Feizi's setting, searched).

A query is a (template, cell) pair: the template (one of ``conditions.templates``) is the
sample the searcher observes, by its CLIP text embedding, and the cell picks a class word
and a condition word. One iteration composes ``B`` prompts, generates their images in one
batched pipeline call with a seed per query (recorded, so every image can be regenerated;
:func:`generation_seed`), saves each as PNG in the run directory's ``images/``, and then:

* **validity**: an image is invalid when it is blank (a safety-checker black image) or
  when CLIP does not see its class: the intended class must be among the
  ``visible_top_k`` most probable of ``class_prompt`` over every class word. An invalid
  query is never a failure (reward -1, ``valid: false`` in its record);
* **the classifier** (or each model of a family) answers on the image resized to
  ``image_size``; a valid query fails when it misclassifies (eq. 4 reward, as the image
  audit scores, aggregated over a family by ``reward.aggregate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fadejax.audits.conditions import ConditionAudit
from fadejax.audits.image.config import RewardConfig
from fadejax.audits.prompt.prompts import compose
from fadejax.audits.prompt.task import TemplatedImageQueries, query_id
from fadejax.core.rewards import classification_reward, family_reward
from fadejax.core.spaces import ConceptSpace

#: seed domains: a discovery query's image, and (for fine-tuning data and held-out checks)
#: the images generated outside the search, never sharing a seed with it
AUDIT, TRAIN, RANDOM, EVAL = 0, 1, 2, 3


def generation_seed(run_seed: int, domain: int, a: int, b: int) -> int:
    """The diffusion seed of image ``(a, b)`` of ``domain`` (a query: ``(iteration, env)``)."""
    return int(np.random.SeedSequence([run_seed, domain, a, b]).generate_state(1)[0])


def to_classifier(images: np.ndarray, size: int) -> jax.Array:
    """``(B, H, W, 3)`` uint8 generated images as the classifier's ``(B, size, size, 3)``
    float32 input in [0, 1] (bilinear)."""
    x = jnp.asarray(images, jnp.float32) / 255.0
    return jax.image.resize(x, (x.shape[0], size, size, x.shape[3]), "linear")


def visible(probs: np.ndarray, intended: np.ndarray, top_k: int) -> np.ndarray:
    """Whether each image's intended class (``(B,)`` column of ``probs (B, K)``) is among
    its ``top_k`` most probable (ties count in its favour)."""
    own = probs[np.arange(len(intended)), intended]
    return (probs > own[:, None]).sum(axis=1) < top_k


@dataclass
class ConditionTask(TemplatedImageQueries):
    """Everything a discovery run needs about a generated-conditions audit.

    Attributes:
      templates: ``N`` prompt templates (the samples).
      observations: ``(N, D)`` float32: CLIP text embeddings of the templates.
      space: the ``class`` and ``condition`` word axes.
      generator: the diffusion oracle (``generate(prompts, seeds) -> (B, H, W, 3) uint8``).
      scorer: the CLIP scorer (``zero_shot``, ``text_embeddings``).
      classifier: the audited model, ``(B, S, S, 3)`` float32 in [0, 1] -> logits
        ``(B, classes)`` (``(M, B, classes)`` for a family).
      class_labels: ``(K,)`` int32, the classifier's label of each class word.
      class_prompts: class word -> ``class_prompt`` filled with it (CLIP's visibility check).
      image_size: ``S``, the classifier's input side.
      reward: eq. 4's settings and a family's aggregate.
      members: a family's model names (rows of its logits); empty for one model.
      label_names: the classifier's class names, if known.
      visible_top_k: how high CLIP must rank the intended class for a valid image.
      seed: the run's seed (each image's seed derives from it).
    """

    templates: list[str]
    observations: jax.Array
    space: ConceptSpace
    generator: Any
    scorer: Any
    classifier: Any
    class_labels: np.ndarray
    class_prompts: dict[str, str]
    image_size: int
    reward: RewardConfig = field(default_factory=RewardConfig)
    members: tuple[str, ...] = ()
    label_names: tuple[str, ...] | None = None
    visible_top_k: int = 1
    seed: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    kind: str = "conditions"
    #: each query generates its image from a seed of its own (iteration, env), so a (sample, cell) pair asked again is a new draw
    deterministic = False
    landscape_refusal: str = ConditionAudit.landscape_refusal
    run_dir: Path | None = None

    def __post_init__(self) -> None:
        r = self.reward
        eq4 = {"scale": r.scale, "const": r.const, "form": r.form}
        rows = {name: i for i, name in enumerate(self.members)}

        def score(logits: jax.Array, labels: jax.Array):
            if not self.members:
                return classification_reward(logits, labels, **eq4), None
            return family_reward(logits, labels, aggregate=r.aggregate, a=rows.get(r.a), b=rows.get(r.b), **eq4)

        self._score = jax.jit(score)
        self.record_names = {"label": self.label_names, "predicted": self.label_names} if self.label_names else {}
        if self.members and self.label_names:
            self.record_names.update({f"{m}.predicted": self.label_names for m in self.members})

    def evaluate(self, inputs: None, pending: dict[str, jax.Array]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Compose, generate (one batched call), save PNGs, check visibility, classify."""
        if self.run_dir is None:
            raise RuntimeError("a conditions task needs attach_run_dir(run_dir) before it is queried (its images are saved there)")
        from bridges.clip_scorer import invalid
        from bridges.diffusion import save_png

        samples, cells = np.asarray(pending["sample"]), np.asarray(pending["cell"])
        iteration = int(pending["iteration"])
        prompts = self.prompts(samples, cells)
        seeds = [generation_seed(self.seed, AUDIT, iteration, env) for env in range(len(prompts))]
        images = np.asarray(self.generator.generate(prompts, seeds))
        ids = [query_id(iteration, env) for env in range(len(prompts))]
        for qid, image in zip(ids, images):
            save_png(image, self.run_dir / "images" / f"{qid}.png")
        intended = cells[:, 0].astype(np.int64)
        probs = np.asarray(self.scorer.zero_shot(images, self.class_prompts))
        blank = np.asarray(invalid(images), bool)
        valid = ~blank & visible(probs, intended, self.visible_top_k)
        labels = jnp.asarray(self.class_labels[intended], jnp.int32)
        outcome, per = self._score(self.classifier(to_classifier(images, self.image_size)), labels)
        failed = valid & np.asarray(outcome.failed)
        core = {"reward": np.where(valid, np.asarray(outcome.reward), -1.0).astype(np.float32), "failed": failed}
        fields: dict[str, Any] = {"label": np.asarray(labels), "prompt": prompts, "seed": seeds, "image": [f"{qid}.png" for qid in ids],
                                  "valid": valid, "blank": blank, "class_probability": probs[np.arange(len(ids)), intended]}
        if not self.members:
            fields.update({"predicted": outcome.predicted, "score": outcome.score})
        for m, name in enumerate(self.members):
            fields.update({f"{name}.failed": valid & np.asarray(per.failed[m]), f"{name}.predicted": per.predicted[m], f"{name}.score": per.score[m]})
        return core, fields

    def replicate(self, sharding: Any) -> None:
        self.observations = jax.device_put(self.observations, sharding)


def class_labels_of(config, names: list[str] | None) -> np.ndarray:
    """Each class word's label in the classifier: ``conditions.class_index``, else the word
    matched (case-insensitively) to a class name or one of its comma-separated aliases."""
    words = [str(v) for v in config.space.axes[0].values]
    given = config.conditions.class_index or {}
    lookup: dict[str, int] = {}
    for label, name in enumerate(names or []):
        for alias in str(name).split(","):
            lookup.setdefault(alias.strip().lower(), label)
    labels = []
    for word in words:
        if word in given:
            labels.append(given[word])
        elif word.lower() in lookup:
            labels.append(lookup[word.lower()])
        else:
            known = f"the classifier's classes are {list(names)[:20]}" if names else "the classifier names no classes"
            raise ValueError(f"conditions.class_index: the class word '{word}' is not a class name ({known}); "
                             "map each class word to its label under conditions.class_index")
    return np.asarray(labels, np.int32)


def build_condition_task(config, oracle: Any = None, generator: Any = None, scorer: Any = None, progress: bool = True) -> ConditionTask:
    """Load the classifier (or family) with its held-out data, the pipeline and CLIP (local
    paths, never downloaded), and embed the templates once."""
    from fadejax.audits.image.task import load_classifier

    c = config.conditions
    classifier, held_out, info = load_classifier(config, oracle, progress)
    names = info.get("label_names") or held_out.class_names
    class_labels = class_labels_of(config, names)
    num_classes = len(names) if names else held_out.num_classes
    if int(class_labels.max()) >= num_classes or int(class_labels.min()) < 0:
        raise ValueError(f"conditions.class_index: labels must lie in 0..{num_classes - 1} (the classifier's classes)")
    if generator is None:
        from bridges.diffusion import load_diffusion

        generator = load_diffusion(c.pipeline, c.device, c.dtype, steps=c.steps, guidance_scale=c.guidance_scale,
                                   height=c.height, width=c.width, batch_size=c.batch_size)
    if scorer is None:
        from bridges.clip_scorer import load_clip

        scorer = load_clip(c.clip, c.device)
    words = [str(v) for v in config.space.axes[0].values]
    class_prompts = {w: compose(c.class_prompt, {"class": w}) for w in words}
    embeddings = np.asarray(scorer.text_embeddings(list(c.templates)), np.float32)
    info.update({"pipeline": c.pipeline, "clip": c.clip, "templates": len(c.templates), "generation": getattr(generator, "settings", {}),
                 "class_labels": {w: int(l) for w, l in zip(words, class_labels)}})
    return ConditionTask(
        templates=list(c.templates), observations=jnp.asarray(embeddings), space=config.concept_space(), generator=generator,
        scorer=scorer, classifier=classifier, class_labels=class_labels, class_prompts=class_prompts,
        image_size=c.image_size or config.data.image_size, reward=config.reward, members=tuple(config.models.names),
        label_names=tuple(names) if names else None, visible_top_k=c.visible_top_k, seed=config.run.seed, info=info,
    )
