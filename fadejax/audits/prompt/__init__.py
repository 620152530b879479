"""The text-to-image audit (``task: prompt``): prompts from concepts, generated images, and
their rewards (eq. 8 human ratings, eq. 9 CLIP). Section: ``prompt`` (required)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fadejax.engine.audit import Audit, AuditError, RestructureRequest, section_paths
from fadejax.audits.prompt.config import PromptConfig


class PromptAudit(Audit):
    name = "prompt"
    sections = {"prompt": PromptConfig}
    required = ("prompt",)
    example_view = "generated"
    landscape_refusal = ("exhaustive landscapes of generated images are not computed (every query is a diffusion run and, "
                         "with human rewards, a person's rating); summarize the discovery run instead")  # its tasks carry it too
    recordable = False  # every query is a diffusion run
    reevaluates_modes = False  # re-generating a mode costs diffusion runs (and, with human rewards, ratings)
    restructure_defaults = (4, 1e-4)
    restructure_options = {"lora_data": (str, "text-to-image runs: captioned images to train the LoRA adapter on (DIR)")}
    finetune_specs = {"lora": "fadejax.audits.prompt.finetune_spec:LoraSpec"}

    def paths_named(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        return section_paths(data, {"prompt": ("pipeline", "lora", "clip")})

    def default_axes(self) -> list[dict[str, Any]]:
        from fadejax.audits.prompt.prompts import DEFAULT_AXES

        return [{"name": name, "values": list(words)} for name, words in DEFAULT_AXES.items()]

    def check_axes(self, axes) -> None:
        for i, axis in enumerate(axes):
            if not axis.words:
                raise ValueError(f"space.axes.{i}: prompt axis '{axis.name}' needs words, got {axis.values}")

    def check_config(self, config) -> None:
        from fadejax.audits.prompt.prompts import DEFAULT_TEMPLATES, validate_templates

        if config.prompt.pipeline is None:
            raise ValueError("prompt.pipeline: a local diffusers pipeline directory is needed")
        validate_templates(config.prompt.templates or DEFAULT_TEMPLATES, [a.name for a in config.space.axes])

    def build_task(self, config, *, oracle: Any = None, progress: bool = True):
        from fadejax.audits.prompt.task import build_prompt_task

        return build_prompt_task(config, oracle=oracle, progress=progress)

    def attach_examples(self, task, examples: list[tuple[int, dict[str, Any]]], run_dir: Path) -> None:
        """Each example's generated image, read from the run directory."""
        import numpy as np
        from PIL import Image

        from fadejax.stages.summarize import png_base64

        from fadejax.engine.store.trust import inside

        for _, record in examples:
            path = inside(run_dir / "images", str(record.get("image", "")))  # a shared record may name any file
            if path is None or not path.is_file():
                continue
            try:
                record["image"] = png_base64(np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0, scale=1)
            except (OSError, ValueError):  # not an image: the report shows its name
                continue

    def summary_extras(self, run_dir: Path, config) -> dict[str, Any]:
        """The bias measure: how many images of each zero-shot attribute, and the
        ``prompt.bias_ratio`` (e.g. male-to-female) ratio, over all images and per visited cell."""
        from fadejax.audits.prompt.task import attribute_ratio
        from fadejax.engine.store.records import read_records, records_path

        num, den = config.prompt.bias_ratio
        overall: dict[str, int] = {}
        per_cell: dict[int, dict[str, int]] = {}
        for record in read_records(records_path(run_dir)):
            attribute = record.get("attribute", "ambiguous")
            overall[attribute] = overall.get(attribute, 0) + 1
            counts = per_cell.setdefault(int(record["cell"]), {})
            counts[attribute] = counts.get(attribute, 0) + 1
        space = config.concept_space()
        return {
            "measure": f"{num}-to-{den}", "counts": overall, "ratio": attribute_ratio(overall, num, den),
            "by_cell": [{"cell": c, "concepts": space.describe(c), "counts": n, "ratio": attribute_ratio(n, num, den)} for c, n in sorted(per_cell.items())],
        }

    def check_restructure(self, config, request: RestructureRequest) -> None:
        if not request.options.get("lora_data"):
            raise AuditError("restructuring a text-to-image run trains a LoRA adapter: give --lora-data DIR (captioned images)")

    def restructure(self, run_dir: Path, config, modes: list[int], out: Path, request: RestructureRequest) -> dict[str, Any]:
        from fadejax.audits.prompt.restructure import restructure_prompt

        return restructure_prompt(run_dir, config, modes, out, data_dir=request.options["lora_data"], epochs=request.epochs,
                                  learning_rate=request.learning_rate, progress=request.progress)

    def render_shift_report(self, report: dict[str, Any]) -> str:
        from fadejax.audits.prompt.restructure import render_markdown

        return render_markdown(report)
