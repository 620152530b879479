"""The generated-conditions audit (``task: conditions``): a classifier on images a diffusion
model generates of its classes under conditions named in words, each checked by CLIP
(Chegini & Feizi). Sections: ``conditions`` (required), and the image audit's ``data``
(the classifier's held-out set: the clean debug set ``fadejax describe`` reads),
``model`` or ``models`` (the audited classifier or family) and ``reward`` (eq. 4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fadejax.engine.audit import Audit, AuditError, section_paths
from fadejax.audits.conditions.config import ConditionsConfig
from fadejax.audits.image import ImageAudit
from fadejax.audits.image.config import DataConfig, ModelConfig, ModelFamily, RewardConfig

#: the two word axes a config of this audit starts with, in this order (further word axes,
#: e.g. ``style``, may follow)
AXES = ("class", "condition")


def check_vocabulary(vocabulary: Any, config, where: str = "conditions.vocabulary") -> dict[str, list[str]]:
    """``vocabulary`` as class word -> candidate conditions, each a word of the axes;
    ``ValueError`` naming ``where`` otherwise."""
    classes, conditions = ([str(v) for v in a.values] for a in config.space.axes)
    if not isinstance(vocabulary, dict):
        raise ValueError(f"{where}: a mapping of class words to lists of conditions is needed, got {type(vocabulary).__name__}")
    for name, words in vocabulary.items():
        if name not in classes:
            raise ValueError(f"{where}: '{name}' is not a word of the class axis {classes}")
        unknown = [w for w in words if w not in conditions] if isinstance(words, list) else words
        if unknown or not words:
            raise ValueError(f"{where}.{name}: {unknown or 'no words'} not among the condition axis' words {conditions}")
    return {str(k): [str(w) for w in v] for k, v in vocabulary.items()}


def describe_template(config) -> str:
    """The prompt CLIP names a failure's condition with: ``conditions.describe_template``,
    by default the first of ``conditions.templates``."""
    c = config.conditions
    return c.describe_template or c.templates[0]


def read_vocabulary(config) -> dict[str, list[str]]:
    """Each class word's candidate conditions: ``conditions.vocabulary`` (a mapping or a
    YAML/JSON file of one), every condition word for a class it leaves out."""
    import yaml

    given = config.conditions.vocabulary or {}
    if isinstance(given, str):
        path = Path(given)
        if not path.is_file():
            raise AuditError(f"conditions.vocabulary: the file '{given}' does not exist")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise AuditError(f"conditions.vocabulary: '{given}' is not YAML or JSON: {exc}") from None
        try:
            given = check_vocabulary(loaded, config, where=f"conditions.vocabulary ({given})")
        except ValueError as exc:
            raise AuditError(str(exc)) from None
    conditions = [str(v) for v in config.space.axes[1].values]
    return {str(w): list(given.get(str(w), conditions)) for w in config.space.axes[0].values}


class ConditionAudit(Audit):
    name = "conditions"
    sections = {"data": DataConfig, "model": ModelConfig, "models": ModelFamily, "reward": RewardConfig, "conditions": ConditionsConfig}
    required = ("conditions",)
    example_view = "generated"
    landscape_refusal = ("exhaustive landscapes of generated images are not computed (every query is a diffusion run); "
                         "summarize the discovery run instead")
    recordable = False  # every query is a diffusion run
    reevaluates_modes = False  # re-generating a mode costs diffusion runs
    restructure_defaults = (1000, 0.2)  # the paper's head retraining: many cheap epochs (the head trains on cached features)
    restructure_options = {
        "model": ImageAudit.restructure_options["model"],  # here: without it, every member of a family (the collective fix)
        "images_per_mode": (int, "generated-conditions runs: images generated per chosen mode for the fix (default 5)"),
        "eval_images_per_mode": (int, "generated-conditions runs: fresh images per mode that check the fix (default 5)"),
        "weight_decay": (float, "generated-conditions runs: SGD weight decay of the head (default 5e-4, the paper's)"),
    }
    finetune_specs = {"classifier": "fadejax.audits.image.finetune_spec:ClassifierSpec"}

    def code_named(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        return ImageAudit.code_named(self, data)

    def paths_named(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        found = ImageAudit.paths_named(self, data)
        return found + section_paths(data, {"conditions": ("pipeline", "clip", "train_data", "vocabulary")})

    def default_axes(self) -> list[dict[str, Any]]:
        return [{"name": "class", "values": ["dog", "cat"]}, {"name": "condition", "values": ["in the snow", "on the grass"]}]

    def check_axes(self, axes) -> None:
        names = [a.name for a in axes]
        if tuple(names[:2]) != AXES:
            raise ValueError(f"space.axes: a conditions audit's word axes are 'class' then 'condition', then any further ones "
                             f"(e.g. 'style'); got {names}")
        for i, axis in enumerate(axes):
            if not axis.words:
                raise ValueError(f"space.axes.{i}: '{axis.name}' needs words, got {axis.values}")

    def check_config(self, config) -> None:
        from fadejax.audits.prompt.prompts import PromptError, validate_template, validate_templates

        ImageAudit.check_config(self, config)  # model vs models, the family's aggregate
        c = config.conditions
        checks = [("conditions.templates", lambda: validate_templates(c.templates, [a.name for a in config.space.axes])),
                  ("conditions.class_prompt", lambda: validate_template(c.class_prompt, ["class"])),
                  ("conditions.describe_template", lambda: validate_template(describe_template(config), list(AXES)))]
        for field, check in checks:
            try:
                check()
            except PromptError as exc:
                more = (" (templates[0] names more axes than class and condition: give the prompt CLIP names each failure's "
                        "condition with)" if field.endswith("describe_template") and c.describe_template is None else "")
                raise ValueError(f"{field}: {exc}{more}") from None
        classes = [str(v) for v in config.space.axes[0].values]
        if isinstance(c.vocabulary, dict):  # a file is read and checked when it is used (its path may be relative to a run)
            check_vocabulary(c.vocabulary, config)
        for name in c.class_index or {}:
            if name not in classes:
                raise ValueError(f"conditions.class_index: '{name}' is not a word of the class axis {classes}")
        if c.visible_top_k > len(classes):
            raise ValueError(f"conditions.visible_top_k: {c.visible_top_k} is more than the {len(classes)} class words")

    def family_members(self, config) -> list[str]:
        return config.models.names

    def landscape_identity(self, config) -> dict[str, Any]:
        identity = {name: getattr(config, name).model_dump(mode="json") for name in ("data", "model", "reward", "conditions")}
        return {**identity, "models": config.models.model_dump(mode="json")}

    def build_task(self, config, *, oracle: Any = None, progress: bool = True):
        from fadejax.audits.conditions.task import build_condition_task

        return build_condition_task(config, oracle=oracle, progress=progress)

    def audited_model(self, task) -> tuple[Any, str]:
        return task, "classifier"  # generated images at the classifier's size (B, S, S, 3) -> logits

    def attach_examples(self, task, examples: list[tuple[int, dict[str, Any]]], run_dir: Path) -> None:
        from fadejax.audits.prompt import PromptAudit

        PromptAudit.attach_examples(self, task, examples, run_dir)  # the generated PNGs, as the text-to-image audit shows them

    def check_restructure(self, config, request) -> None:
        from fadejax.audits.conditions.restructure import check

        check(config, request)

    def restructure(self, run_dir: Path, config, modes: list[int], out: Path, request) -> dict[str, Any]:
        from fadejax.audits.conditions.restructure import restructure_conditions

        return restructure_conditions(run_dir, config, modes, out, request)

    def render_shift_report(self, report: dict[str, Any]) -> str:
        from fadejax.audits.conditions.restructure import render_markdown

        return render_markdown(report)

    def describe_failures(self, config, out: Path, *, model: str | None = None, top: int = 5, run: Path | None = None, limit: int = 1000,
                          trust_code: bool = False, progress: bool = True) -> dict[str, Any]:
        from fadejax.audits.conditions.describe import describe

        if config.models.names and model is None:
            raise AuditError(f"this config audits a family; name the model whose failures to describe with --model, one of {config.models.names}")
        if model is not None and model not in config.models.names and (run is None or config.models.names):  # with --run and one
            # model, it names the member of the run's family that is this classifier
            raise AuditError(f"--model '{model}' is not a model of this config's family {config.models.names or '(it audits one model)'}")
        if limit < 1:
            raise AuditError(f"--max-failures {limit}: give 1 or more")
        return describe(config, Path(out), model=model, top=top, run=run, limit=limit, trust_code=trust_code, progress=progress)

    def propose_conditions(self, config, source: Path, overrides: list[str], generator: str, out: Path, *, per_class: int = 5,
                           prompt: str | None = None, seed: int = 0, device: str = "cpu", progress: bool = True) -> dict[str, Any]:
        from fadejax.audits.conditions.propose import propose_conditions

        return propose_conditions(config, Path(source), overrides, generator, Path(out), per_class=per_class, prompt=prompt, seed=seed,
                                  device=device, progress=progress)
