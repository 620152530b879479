"""The audit plugin interface: everything the core needs to know about what it audits.

An audit is one kind of audited model and query (an image classifier under perturbations,
a summarizer under text edits, a text-to-image pipeline under prompt words, a tabular
classifier under feature shifts, ...). The core (config loading, the discovery loop,
ground truth, summaries and reports, restructure, the CLI) asks an :class:`Audit` for
what differs and never names a particular one. Write a subclass, give it a ``name`` (the
config's ``task:`` value), and register it (:func:`fadejax.audits.register`, an entry
point in the ``fadejax.audits`` group, or ``task: "package.module:AuditClass"``); see
``docs/write-your-own-audit.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pydantic

if TYPE_CHECKING:
    from fadejax.engine.config import AxisConfig, ExperimentConfig
    from fadejax.engine.task import AuditTask


def section_paths(data: dict[str, Any], fields: dict[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    """``(section.field, value)`` for each non-empty string at ``fields`` (``{section: (field, ...)}``)
    of a raw config: the paths an audit's :meth:`Audit.paths_named` lists."""
    found = []
    for section, names in fields.items():
        values = data.get(section)
        if isinstance(values, dict):
            found += [(f"{section}.{name}", values[name]) for name in names if isinstance(values.get(name), str) and values[name]]
    return found


class AuditError(ValueError):
    """An audit is unknown, cannot be loaded, or cannot do what was asked (e.g. it has no
    restructure). The CLI prints it as one ``error:`` line and exits 2."""


@dataclass(frozen=True)
class RestructureRequest:
    """What ``fadejax restructure`` was asked, beyond the run and its modes.

    ``epochs`` and ``learning_rate`` are already resolved (the audit's defaults where the
    user gave none); ``options`` holds audit-specific settings (e.g. ``lora_data``,
    ``train_articles``), ``None`` where not given.
    """

    epochs: int
    learning_rate: float
    failure_weight: float
    use_clean: bool
    radius: int
    options: dict[str, Any]
    progress: bool = True
    #: which parameters train, one of the audit's :attr:`Audit.fade_scopes` (``None``: its first)
    scope: str | None = None
    #: what the fine-tune trains on (:attr:`Audit.fade_data`): ``"modes"`` (the training split
    #: under the chosen modes), ``"uniform"`` (as many examples, each under a cell drawn
    #: uniformly from the whole space), ``"weighted"`` (each under a cell drawn from
    #: ``cell_weights``) or ``"random"`` (as many clean training examples)
    data: str = "modes"
    #: with ``data="weighted"``: a probability per cell of the whole space (``(num_actions,)``)
    cell_weights: tuple[float, ...] | None = None


class Audit:
    """One kind of audit. Class attributes describe it; methods build and explain it.

    Attributes:
      name: the config's ``task:`` value, e.g. ``"image"``.
      sections: the top-level config sections this audit owns, each a pydantic model
        whose fields all have defaults unless the section is listed in ``required``.
      required: sections a config of this audit must give (no defaults).
      example_view: how a report shows one query: ``"picture"`` (records carry an
        ``image`` the audit attaches), ``"text"`` (records carry ``text``/``summary``),
        ``"generated"`` (a prompt and its generated picture) or ``"fields"`` (the
        record's own fields as a table; what a new audit gets by default).
      landscape_refusal: ``None`` if an exhaustive landscape can be computed, else why
        not (shown to the user as is).
      recordable: whether ``fadejax landscape --record`` / ``recording:`` apply.
      reevaluates_modes: whether summaries re-check each reported mode on every
        held-out sample (costs a model call per sample and mode).
      micro_alpha: the microscopic step penalty when ``micro.alpha`` is not set.
      restructure_defaults: ``(epochs, learning_rate)`` of its fine-tuner, or ``None``
        if it has no restructure.
      restructure_options: the audit's own ``fadejax restructure`` options: name ->
        ``(type, help)``; each becomes ``--name-with-dashes`` on the command line.
      finetune_specs: fine-tuner kind -> ``"module:SpecModel"`` of the fine-tuners it
        launches (:mod:`fadejax.stages.finetune`).
      fade_scopes: the fine-tune scopes ``fadejax fade --scope`` may ask for (``"head"``,
        ``"full"``, ``"lora"``), its default first; empty if it has no fade. An audit with
        a fade writes ``"clean": {"name", "before", "after"}`` (its clean held-out figure
        in [0, 1], higher is better) into every shift report.
      fade_data: the fine-tune data :attr:`RestructureRequest.data` may ask for (the
        baselines ``uniform`` and ``random`` need the audit to build them).
      live_gymnasium: whether :meth:`gymnasium_env` gives its live audit as a gymnasium
        environment (:mod:`fadejax.envs.gym` registers those).
    """

    name: ClassVar[str] = ""
    sections: ClassVar[dict[str, type[pydantic.BaseModel]]] = {}
    required: ClassVar[tuple[str, ...]] = ()
    example_view: ClassVar[str] = "fields"
    landscape_refusal: ClassVar[str | None] = None
    recordable: ClassVar[bool] = True
    reevaluates_modes: ClassVar[bool] = True
    micro_alpha: ClassVar[float] = 5.0
    restructure_defaults: ClassVar[tuple[int, float] | None] = None
    restructure_options: ClassVar[dict[str, tuple[type, str]]] = {}
    finetune_specs: ClassVar[dict[str, str]] = {}
    fade_scopes: ClassVar[tuple[str, ...]] = ()
    fade_data: ClassVar[tuple[str, ...]] = ("modes",)
    live_gymnasium: ClassVar[bool] = False

    # -- configuration --------------------------------------------------------------
    def code_named(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        """``(dotted field, what it names)`` for each field of a raw config (the YAML mapping,
        not yet parsed) that makes this audit import or call code outside fadejax's own
        registries, e.g. a model class given as ``"package.module:Class"``. A run
        directory naming any is opened only with ``--trust-code`` (:mod:`fadejax.engine.store.trust`)."""
        return []

    def paths_named(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        """``(dotted field, path)`` for each file or directory a raw config of this audit
        reads (weights, data, models), so that a shared run directory's outside paths can
        be reported before they are used (:func:`fadejax.engine.store.trust.paths_outside`)."""
        return []

    def default_axes(self) -> list[dict[str, Any]] | None:
        """The concept axes a config of this audit gets when it has no ``space`` section
        (``[{"name": ..., "values": [...]}, ...]``), or ``None`` for the core's default."""
        return None

    def check_axes(self, axes: list["AxisConfig"]) -> None:
        """Raise ``ValueError("space.axes.I: ...")`` for an axis that means nothing here."""

    def check_config(self, config: "ExperimentConfig") -> None:
        """Raise ``ValueError`` naming the field for cross-field problems of this audit."""

    def family_members(self, config: "ExperimentConfig") -> list[str]:
        """The names of the models a config audits together as a family (every query
        answered by each; their per-model outcomes in each record as ``NAME.failed``), or
        ``[]`` for one audited model. Summaries then compare the models
        (:mod:`fadejax.stages.family`)."""
        return []

    def axis_identity(self, config: "ExperimentConfig", index: int) -> float | str | None:
        """The value of axis ``index`` that changes nothing, if it has one (summaries use
        it to describe a mode minimally); ``None`` if none."""
        return None

    def landscape_identity(self, config: "ExperimentConfig") -> dict[str, Any]:
        """What an exhaustive landscape of this audit depends on besides ``space``, as JSON
        values: what a ground truth's and a recording's key hashes. Default: every one of
        its sections, whole."""
        return {name: getattr(config, name).model_dump(mode="json") for name in self.sections if getattr(config, name) is not None}

    # -- the task ---------------------------------------------------------------------
    def build_task(self, config: "ExperimentConfig", *, oracle: Any = None, progress: bool = True) -> "AuditTask":
        """Load the data and the audited model (``oracle`` replaces the model where the
        audit allows it) and return the :class:`fadejax.engine.task.AuditTask` the loop runs."""
        raise NotImplementedError(f"audit '{self.name}' does not build a task")

    def audited_model(self, task: "AuditTask") -> tuple[Any, str] | None:
        """Where the audited model's own batched call lives, as ``(owner, attribute)`` with
        ``getattr(owner, attribute)(batch)`` that call (``benchmarks/throughput.py`` wraps it
        to time the model alone on the engine's very inputs); ``None`` if it has no such call."""
        return None

    def gymnasium_env(self, config: "ExperimentConfig", task: "AuditTask") -> Any:
        """The live audit as a gymnasium environment, one audited-model query per step
        (macro or micro as ``config.mode`` says); audits with ``live_gymnasium`` override it."""
        raise NotImplementedError(f"audit '{self.name}' has no live gymnasium environment")

    # -- summaries and reports ----------------------------------------------------------
    def attach_examples(self, task: "AuditTask", examples: list[tuple[int, dict[str, Any]]], run_dir: Path) -> None:
        """Give the report's example records (``(cell, record)`` pairs) what they show
        beyond their fields, e.g. the perturbed picture as a base64 PNG in ``record["image"]``."""

    def summary_extras(self, run_dir: Path, config: "ExperimentConfig") -> dict[str, Any] | None:
        """Audit-specific figures for the summary and report (e.g. a bias measure), or ``None``."""
        return None

    def describe_failures(self, config: "ExperimentConfig", out: Path, *, model: str | None = None, top: int = 5,
                          run: Path | None = None, limit: int = 1000, trust_code: bool = False,
                          progress: bool = True) -> dict[str, Any]:
        """``fadejax describe``: name the audited model's real failures in words (e.g. each
        held-out failure's most likely condition, by CLIP), write them to ``out`` and return
        the description (JSON-able), whose ``"lines"`` the command prints (the ``top``
        ranked items among them). ``model``: a family member's name; ``run``: a discovery
        run whose failures to describe instead (at most ``limit``; ``trust_code`` as for
        any run directory, :mod:`fadejax.engine.store.trust`)."""
        raise AuditError(f"the '{self.name}' audit does not describe failures in words (the 'conditions' audit does)")

    def propose_conditions(self, config: "ExperimentConfig", source: Path, overrides: list[str], generator: str, out: Path, *,
                           per_class: int = 5, prompt: str | None = None, seed: int = 0, device: str = "cpu",
                           progress: bool = True) -> dict[str, Any]:
        """``fadejax propose-conditions``: a local language model (``generator``) proposes new
        words for the config's axes; the config file ``source`` (with ``overrides``) extended
        by them is written to ``out``. Returns ``{"proposals", "config", "lines"}``, whose
        ``"lines"`` the command prints."""
        raise AuditError(f"propose-conditions extends a generated-conditions config (task: conditions); this is a '{self.name}' config")

    # -- restructure --------------------------------------------------------------------
    def check_restructure(self, config: "ExperimentConfig", request: RestructureRequest) -> None:
        """Raise :class:`AuditError` for a restructure request this audit cannot serve,
        before anything is written."""

    def starter_config(self, model: str, data: str, weights: str | None) -> tuple[dict[str, Any], dict[str, str]]:
        """``fadejax init``: a raw config (the YAML mapping) of this audit for ``model`` (e.g.
        ``"file:package.module:Class"``) and ``data`` (a path), and a comment per top-level
        section saying what to change there. :class:`AuditError` naming what is allowed if
        the model or data cannot be used; by default, that this audit has no ``init``."""
        raise AuditError(f"the '{self.name}' audit has no 'fadejax init'; write its config by hand (see configs/)")

    def restructure(self, run_dir: Path, config: "ExperimentConfig", modes: list[int], out: Path,
                    request: RestructureRequest) -> dict[str, Any]:
        """Fine-tune the audited model away from ``modes``, rediscover into ``out/rediscovery``
        and return the shift report (JSON-able; it must hold ``modes`` as a list of
        ``{"cell": ...}`` and ``rediscovery``); write its Markdown as ``out/shift_report.md``."""
        raise AuditError(f"the '{self.name}' audit has no restructure (no fine-tuner); "
                         "summarize the run and act on its modes yourself")

    def render_shift_report(self, report: dict[str, Any]) -> str:
        """The shift report as Markdown."""
        import json

        return f"# Shift report for {report.get('run', 'a run')}\n\n```json\n{json.dumps(report, indent=2)}\n```\n"
