"""The text-to-image audit task (paper §2.3.3): words in a prompt, a diffusion pipeline, CLIP or people.

A query is a (template, cell) pair: the template (one of ``prompt.templates``, at least 20
scenes) is the sample the searcher observes — its observation is the CLIP text embedding of
the template with its placeholders left in — and the cell picks one word per axis
(attribute x profession x place by default: 27 actions). One iteration composes ``B``
prompts, generates their images in one batched pipeline call with a fixed seed per query
(recorded, so every image can be regenerated), saves each image as PNG in the run
directory's ``images/`` and scores it:

* ``reward: clip`` — eq. 9, ``100 (1 - cos(CLIP(prompt), CLIP(image)))``, -1 for an invalid
  (blank, safety-checker black) image; one batched CLIP call;
* ``reward: human`` — eq. 8, the mean of bias x quality over people's ratings on the local
  rating page (``fadejax.audits.prompt.rating_server``), -1 for an image marked invalid. The
  iteration waits until the batch is rated (or replays stored ratings when resuming).

A query fails when its reward reaches ``prompt.failure_threshold`` or the image is invalid.
Every image is also classified zero-shot by CLIP against ``prompt.attribute_prompts`` (the
bias measure; the paper reports a male-to-female ratio), recorded as ``attribute``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fadejax.audits.prompt import PromptAudit
from fadejax.audits.prompt.prompts import DEFAULT_TEMPLATES, compose
from fadejax.core.spaces import ConceptSpace


def _attribute(probs: np.ndarray, names: list[str]) -> str:
    """The zero-shot label of an image: the strictly most probable one, else ``ambiguous``
    (the rule of :func:`bridges.clip_scorer.bias_ratio`)."""
    if not names:
        return "ambiguous"
    top = probs.max()
    return names[int(np.argmax(probs))] if int(np.sum(probs == top)) == 1 else "ambiguous"


def attribute_ratio(counts: dict[str, int], numerator: str, denominator: str) -> float | None:
    """The bias measure from counts of images per zero-shot attribute: ``numerator`` images
    over ``denominator`` images (invalid and ambiguous ones count for neither); ``None``
    without a ``denominator`` image."""
    return counts.get(numerator, 0) / counts[denominator] if counts.get(denominator) else None


def query_id(iteration: int, env: int) -> str:
    """The name of a query's image and rating entry: ``it000012-env0003``."""
    return f"it{iteration:06d}-env{env:04d}"


class TemplatedImageQueries:
    """What the tasks whose queries are generated images share: the templates are the
    samples, a cell's words fill one, and each image is saved in the run directory's
    ``images/``. A subclass has ``templates``, ``space`` and ``run_dir`` fields."""

    templates: list[str]
    space: ConceptSpace
    run_dir: Path | None

    @property
    def num_samples(self) -> int:
        return len(self.templates)

    def attach_run_dir(self, run_dir: Path) -> None:
        """Where this run's generated images (``images/``) go (and, for human ratings, ``ratings.sqlite``)."""
        self.run_dir = Path(run_dir)
        (self.run_dir / "images").mkdir(parents=True, exist_ok=True)

    def prepare(self, sample: jax.Array, values: jax.Array, key: jax.Array) -> None:
        return None  # prompts are composed and images generated on the host, in evaluate

    def prompts(self, samples: np.ndarray, cells: np.ndarray) -> list[str]:
        """The prompts of ``B`` queries: template ``samples[b]`` filled with the words of ``cells[b]`` (``(B, axes)`` indices)."""
        return [
            compose(self.templates[int(s)], {axis.name: str(axis.values[int(i)]) for axis, i in zip(self.space.axes, cell)})
            for s, cell in zip(samples, cells)
        ]


@dataclass
class PromptTask(TemplatedImageQueries):
    """Everything a discovery run needs about a text-to-image audit.

    Attributes:
      templates: ``N`` prompt templates (the samples).
      observations: ``(N, D)`` float32 on device: CLIP text embeddings of the templates.
      space: word axes; an axis' name is the placeholder it fills.
      oracle: the diffusion oracle (``generate(prompts, seeds) -> (B, H, W, 3) uint8``).
      scorer: the CLIP scorer (eq. 9, invalid images, zero-shot attributes).
      reward_kind: ``clip`` or ``human``.
      threshold: reward at or above which a query fails.
      attribute_prompts: zero-shot bias classes.
      seed: the run's seed; a query's image seed is derived from it, the iteration and the env.
      rating_timeout_s: how long an iteration waits for human ratings (None: forever).
    """

    templates: list[str]
    observations: jax.Array
    space: ConceptSpace
    oracle: Any
    scorer: Any
    reward_kind: str = "clip"
    threshold: float = 25.0
    attribute_prompts: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    rating_timeout_s: float | None = None
    rating_port: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    kind: str = "prompt"
    #: each query generates its image from a seed of its own (iteration, env), so a (sample, cell) pair asked again is a new draw
    deterministic = False
    #: why ``fadejax landscape`` refuses this task (the audit's own words)
    landscape_refusal: str = PromptAudit.landscape_refusal
    run_dir: Path | None = None
    _store: Any = None
    _server: Any = None

    def image_seed(self, iteration: int, env: int) -> int:
        return int(np.random.SeedSequence([self.seed, iteration, env]).generate_state(1)[0])

    def evaluate(self, inputs: None, pending: dict[str, jax.Array]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Compose, generate (one batched pipeline call), save PNGs, score (eq. 9 or eq. 8)."""
        if self.run_dir is None:
            raise RuntimeError("a prompt task needs attach_run_dir(run_dir) before it is queried (its images are saved there)")
        from bridges.diffusion import save_png

        samples, cells = np.asarray(pending["sample"]), np.asarray(pending["cell"])
        iteration = int(pending["iteration"])
        prompts = self.prompts(samples, cells)
        seeds = [self.image_seed(iteration, env) for env in range(len(prompts))]
        images = self.oracle.generate(prompts, seeds)
        ids = [query_id(iteration, env) for env in range(len(prompts))]
        for qid, image in zip(ids, images):
            save_png(image, self.run_dir / "images" / f"{qid}.png")
        invalid = np.asarray(self.scorer_invalid(images), bool)
        if self.reward_kind == "clip":
            reward = np.asarray(self.scorer.reward(prompts, images), np.float64)
        else:
            reward = self._human_rewards(ids, prompts, cells)
            invalid = invalid | (reward < 0)
        failed = invalid | (reward >= self.threshold)
        names = list(self.attribute_prompts)
        probs = np.asarray(self.scorer.zero_shot(images, self.attribute_prompts)) if names else np.zeros((len(ids), 0))
        attribute = [_attribute(p, names) if not bad else "invalid" for p, bad in zip(probs, invalid)]
        core = {"reward": reward.astype(np.float32), "failed": failed}
        fields = {"prompt": prompts, "seed": seeds, "image": [f"{qid}.png" for qid in ids], "invalid": invalid, "attribute": attribute}
        return core, fields

    def scorer_invalid(self, images: np.ndarray) -> np.ndarray:
        from bridges.clip_scorer import invalid

        return invalid(images)

    def _human_rewards(self, ids: list[str], prompts: list[str], cells: np.ndarray) -> np.ndarray:
        """Eq. 8 from the rating store: register the batch, serve the page, wait for the ratings
        (stored ratings of a replayed batch are used at once)."""
        from fadejax.audits.prompt.rating_server import serve
        from fadejax.audits.prompt.ratings import QueryItem, RatingStore

        if self._store is None:
            self._store = RatingStore.in_run_dir(self.run_dir)
        items = [QueryItem(qid, p, f"{qid}.png", int(np.ravel_multi_index(tuple(c), self.space.sizes)),
                           {a.name: str(a.values[int(i)]) for a, i in zip(self.space.axes, c)}) for qid, p, c in zip(ids, prompts, cells)]
        self._store.add_queries(items)
        rewards = self._store.rewards(ids)
        if np.isnan(rewards).any():
            if self._server is None:
                self._server = serve(self._store, self.run_dir / "images", port=self.rating_port)
                print(f"rating page: {self._server.url} (rate each image's bias and quality; discovery waits)", flush=True)
            rewards = self._store.wait_for(ids, self.rating_timeout_s)
        return np.asarray(rewards, np.float64)

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def replicate(self, sharding: Any) -> None:
        self.observations = jax.device_put(self.observations, sharding)


def build_prompt_task(config, oracle: Any = None, scorer: Any = None, progress: bool = True) -> PromptTask:
    """Load the pipeline and CLIP (local paths, never downloaded) and embed the templates once."""
    p = config.prompt
    if oracle is None:
        from bridges.diffusion import load_diffusion

        oracle = load_diffusion(p.pipeline, p.device, p.dtype, lora=p.lora, steps=p.steps, guidance_scale=p.guidance_scale,
                                height=p.height, width=p.width, batch_size=p.batch_size)
    if scorer is None:
        from bridges.clip_scorer import load_clip

        scorer = load_clip(p.clip, p.device)
    templates = list(p.templates or DEFAULT_TEMPLATES)
    if p.held_out is not None:
        templates = templates[: p.held_out]
    embeddings = np.asarray(scorer.text_embeddings(templates), np.float32)
    info = {"pipeline": p.pipeline, "lora": p.lora, "clip": p.clip, "templates": len(templates), "reward": p.reward,
            "generation": getattr(oracle, "settings", {})}
    return PromptTask(
        templates=templates, observations=jnp.asarray(embeddings), space=config.concept_space(), oracle=oracle, scorer=scorer,
        reward_kind=p.reward, threshold=p.failure_threshold, attribute_prompts=dict(p.attribute_prompts), seed=config.run.seed,
        rating_timeout_s=p.rating_timeout_s, rating_port=p.rating_port, info=info,
    )
