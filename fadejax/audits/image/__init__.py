"""The image-classification audit (``task: image``, the embedded default): a classifier
under image perturbations, scored by eq. 4.

Sections: ``data`` (where the held-out images come from), ``model`` (the audited
classifier), ``observation`` (what a searcher sees of an image) and ``reward`` (eq. 4).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fadejax.engine.audit import Audit, AuditError, RestructureRequest, section_paths
from fadejax.audits.image.config import DataConfig, ModelConfig, ModelFamily, ObservationConfig, RewardConfig

#: ``data`` fields added after ground truths and recordings were first shipped (image
#: folders and saved data sets)
_LATER_DATA_FIELDS = ("per_class", "split", "image_column", "label_column", "class_map", "skip_unreadable", "channels")
#: ``model`` fields that decide nothing a landscape holds (checks before a run): never in its key
_UNKEYED_MODEL_FIELDS = ("refuse_chance",)

#: Chosen on the embedded digits CNN so that a uniformly random cell rarely fails while
#: the worst cells fail most of the time; see docs/method.md, "The embedded default".
DEFAULT_AXES = [
    {"name": "rotation", "values": [-20.0, -10.0, 0.0, 10.0, 20.0]},
    {"name": "darkness", "values": [0.0, 0.15, 0.3, 0.45, 0.7]},
    {"name": "blur", "values": [0.0, 0.5, 1.0, 2.0, 3.0]},
]


def member_config(config, name: str):
    """``config`` auditing only family member ``name`` (its ``model`` section; no
    ``models``, the reward not aggregated): what ``restructure --model NAME`` fine-tunes
    and rediscovers."""
    from fadejax.engine.config import parse_config

    data = config.model_dump(mode="json")
    data["model"] = config.models.member(name).model_dump(mode="json")
    data["models"] = []
    data["reward"] = {**data["reward"], "aggregate": "mean", "a": None, "b": None}
    data["name"] = f"{config.name}-{name}"
    return parse_config(data)


def _model_sections(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(where, section)`` for the ``model`` section and each ``models`` member of a raw config."""
    found = [("model", data["model"])] if isinstance(data.get("model"), dict) else []
    members = data.get("models")
    if isinstance(members, list):
        found += [(f"models.{i}", m) for i, m in enumerate(members) if isinstance(m, dict)]
    return found


class ImageAudit(Audit):
    name = "image"
    sections = {"data": DataConfig, "model": ModelConfig, "models": ModelFamily, "observation": ObservationConfig, "reward": RewardConfig}
    example_view = "picture"
    micro_alpha = 5.0  # eq. 5
    live_gymnasium = True
    restructure_defaults = (5, 1e-3)  # the paper's: 5 epochs, SGD lr 1e-3, final layer only
    restructure_options = {"model": (str, "in a model family's run: the member to fine-tune (its name in models:)"),
                           "anchor": (float, "L2-SP: weight of the fine-tuned weights' squared distance from the model's before "
                                             "(default 0: off); holds clean accuracy, fades less")}
    finetune_specs = {"classifier": "fadejax.audits.image.finetune_spec:ClassifierSpec"}
    # fade's default first: the whole model kept clean accuracy and faded more than the paper's last layer
    # (benchmarks/RESULTS.md, "Fade until done"); LoRA has no classifier fine-tuner here
    fade_scopes = ("full", "head")
    fade_data = ("modes", "weighted", "uniform", "random")

    def code_named(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        named = []
        for where, model in _model_sections(data):
            if model.get("source") == "file" and model.get("architecture"):
                named.append((f"{where}.architecture", str(model["architecture"])))  # imported and called to build the model
        return named

    def paths_named(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        found = section_paths(data, {"data": ("path",)})
        for where, model in _model_sections(data):
            local_hf = model.get("source") == "huggingface" and Path(str(model.get("architecture", ""))).is_dir()
            for name in ("weights", "architecture") if local_hf else ("weights",):
                if isinstance(model.get(name), str) and model[name]:
                    found.append((f"{where}.{name}", model[name]))
        return found

    def check_config(self, config) -> None:
        family = config.models.names
        if family and config.recording is not None:
            raise ValueError("recording: a recording holds one answer per query, not each of a family's models; audit the family live")
        if family and config.model != ModelConfig():
            raise ValueError("give the audited model either as 'model' or as a family under 'models', not both")
        if not family and config.reward.aggregate != "mean":
            raise ValueError(f"reward.aggregate '{config.reward.aggregate}' combines a family's models: list them under 'models'")
        for field in ("a", "b"):
            name = getattr(config.reward, field)
            if name is not None and name not in family:
                raise ValueError(f"reward.{field}: '{name}' is not a model of the family; its models: {family}")

    def family_members(self, config) -> list[str]:
        return config.models.names

    def default_axes(self) -> list[dict[str, Any]]:
        return [dict(axis) for axis in DEFAULT_AXES]

    def check_axes(self, axes) -> None:
        from fadejax.core import perturbations

        try:
            perturbations.plan([a.perturbation_name for a in axes], [a.values for a in axes], build=False)
        except perturbations.AxisError as exc:
            raise ValueError(f"space.axes.{exc.axis}: {exc}") from None

    def axis_identity(self, config, index: int) -> float | None:
        from fadejax.core import perturbations

        return perturbations.identity(config.space.axes[index].perturbation_name)

    def landscape_identity(self, config) -> dict[str, Any]:
        data = config.data.model_dump(mode="json")
        for name in _LATER_DATA_FIELDS:  # part of the key only when set: earlier ground truths and recordings keep theirs
            if data[name] == DataConfig.model_fields[name].default:
                del data[name]
        identity = {"data": data, "model": config.model.model_dump(mode="json", exclude=set(_UNKEYED_MODEL_FIELDS))}
        if config.models.names:  # part of the key only for families: single-model keys stay as they were
            r = config.reward
            identity["models"] = config.models.model_dump(mode="json", exclude={"__all__": set(_UNKEYED_MODEL_FIELDS)})
            identity["aggregate"] = {"aggregate": r.aggregate, "a": r.a, "b": r.b}
        return identity

    def starter_config(self, model: str, data: str, weights: str | None) -> tuple[dict[str, Any], dict[str, str]]:
        from fadejax.audits.image.starter import COMMENTS, data_section, model_section

        config = {"task": "image", "data": data_section(data), "model": model_section(model, weights), "space": {"axes": self.default_axes()}}
        return config, dict(COMMENTS)

    def build_task(self, config, *, oracle: Any = None, progress: bool = True):
        from fadejax.audits.image.task import build_classification_task

        return build_classification_task(config, oracle=oracle, progress=progress)

    def gymnasium_env(self, config, task):
        from fadejax.audits.image.gym_env import AuditEnv

        if config.mode == "micro":
            return AuditEnv(task, config.reward, micro=config.micro_space(), max_steps=config.micro.max_steps, alpha=config.micro_alpha)
        return AuditEnv(task, config.reward)

    def audited_model(self, task) -> tuple[Any, str]:
        return task, "oracle"  # perturbed images (B, H, W, C) -> logits

    def attach_examples(self, task, examples: list[tuple[int, dict[str, Any]]], run_dir: Path) -> None:
        """Each example's perturbed image, regenerated (keyed perturbations are re-drawn)."""
        import jax.numpy as jnp
        import numpy as np

        from fadejax.audits.image.task import perturbed_images
        from fadejax.stages.summarize import png_base64

        samples = jnp.asarray([r["sample"] for _, r in examples], jnp.int32)
        images = perturbed_images(task.perturb, task.space, task.images[samples], np.asarray([c for c, _ in examples]))
        for (_, record), image in zip(examples, images):
            record["image"] = png_base64(image)

    def check_restructure(self, config, request: RestructureRequest) -> None:
        family, chosen = config.models.names, request.options.get("model")
        if family and chosen is None:
            raise AuditError(f"this run audits a family of models {family}: choose the one to fine-tune with --model NAME")
        if chosen is not None and not family:
            raise AuditError("--model picks a model of a family (models:); this run audits one model")
        if chosen is not None and chosen not in family:
            raise AuditError(f"--model '{chosen}' is not a model of this run's family; its models: {family}")
        anchor = request.options.get("anchor")
        if anchor is not None and not (anchor >= 0 and math.isfinite(anchor)):
            raise AuditError(f"--anchor {anchor}: the weight of L2-SP's penalty must be a finite number >= 0")

    def restructure(self, run_dir: Path, config, modes: list[int], out: Path, request: RestructureRequest) -> dict[str, Any]:
        from fadejax.audits.image.restructure import restructure_classifier

        chosen = request.options.get("model")
        if chosen is None:
            return restructure_classifier(run_dir, config, modes, out, request)
        return restructure_classifier(run_dir, member_config(config, chosen), modes, out, request)

    def render_shift_report(self, report: dict[str, Any]) -> str:
        from fadejax.audits.image.restructure import render_markdown

        return render_markdown(report)
