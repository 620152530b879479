"""The text-summarization audit (``task: text``): a seq2seq summarizer under text edits
(``fadejax.audits.text.edits``), a query failing when its summary's BLEU drops
(Definition 2.1). Section: ``text``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fadejax.engine.audit import Audit, AuditError, RestructureRequest, section_paths
from fadejax.audits.text.config import TextConfig

#: what a text landscape does not depend on: how fast and where it is computed, and what
#: a searcher sees
_NOT_IN_THE_LANDSCAPE = {"batch_size", "edit_workers", "device", "observation", "observation_dim", "embedder"}


class TextAudit(Audit):
    name = "text"
    sections = {"text": TextConfig}
    example_view = "text"
    micro_alpha = 1.0  # eq. 7
    restructure_defaults = (3, 2e-5)  # the paper's Appendix D.2
    restructure_options = {"train_articles": (int, "summarizer runs: training articles edited under each mode (default 600)")}
    finetune_specs = {"seq2seq": "fadejax.audits.text.finetune_spec:Seq2SeqSpec"}
    fade_scopes = ("full", "lora")  # every weight (the paper's Appendix D.2), or peft's low-rank adapters

    def paths_named(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        text = data.get("text") if isinstance(data.get("text"), dict) else {}
        named = section_paths(data, {"text": ("path", "embedder")})
        return named + ([("text.model", text["model"])] if isinstance(text.get("model"), str) and text["model"] != "tiny" else [])

    def default_axes(self) -> list[dict[str, Any]]:
        from fadejax.audits.text import edits

        return [{"name": "edit", "values": edits.names()}]

    def check_axes(self, axes) -> None:
        from fadejax.audits.text import edits

        for i, axis in enumerate(axes):
            where = f"space.axes.{i}"
            if axis.words:
                for value in axis.values:
                    if not isinstance(value, str) or value not in edits.EDITS:
                        raise ValueError(f"{where}: '{value}' is not a text edit; known edits: {edits.names()}")
            else:
                if axis.perturbation_name not in edits.EDITS:
                    raise ValueError(f"{where}: a counting axis names a text edit (name or perturbation); '{axis.perturbation_name}' is not one of {edits.names()}")
                if any(v < 0 or v != int(v) for v in axis.values):
                    raise ValueError(f"{where}: counts of '{axis.perturbation_name}' must be whole numbers >= 0, got {axis.values}")

    def axis_identity(self, config, index: int) -> float:
        return 0.0  # no edit applied

    def landscape_identity(self, config) -> dict[str, Any]:
        return {"text": config.text.model_dump(mode="json", exclude=_NOT_IN_THE_LANDSCAPE)}

    def build_task(self, config, *, oracle: Any = None, progress: bool = True):
        from fadejax.audits.text.task import build_text_task

        return build_text_task(config, oracle=oracle, progress=progress)

    def audited_model(self, task) -> tuple[Any, str]:
        return task.oracle, "summarize"  # edited texts -> summaries (batched generate)

    def check_restructure(self, config, request: RestructureRequest) -> None:
        articles = request.options.get("train_articles")
        if articles is not None and (not isinstance(articles, int) or articles < 1):
            raise AuditError(f"--train-articles takes a whole number >= 1; got {articles}")

    def restructure(self, run_dir: Path, config, modes: list[int], out: Path, request: RestructureRequest) -> dict[str, Any]:
        from fadejax.audits.text.restructure import TRAIN_ARTICLES, restructure_text
        from fadejax.engine.build import build_task

        old_task = build_task(config, progress=request.progress)
        return restructure_text(run_dir, config, modes, out, old_task, use_clean=request.use_clean, epochs=request.epochs,
                                learning_rate=request.learning_rate, articles=request.options.get("train_articles") or TRAIN_ARTICLES,
                                progress=request.progress, scope=request.scope or "full")

    def render_shift_report(self, report: dict[str, Any]) -> str:
        from fadejax.audits.text.restructure import render_markdown

        return render_markdown(report)
