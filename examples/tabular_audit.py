"""An audit kept outside fadejax: a scikit-learn classifier of tabular data under feature
shifts. The worked example of docs/write-your-own-audit.md.

The audited model is a logistic regression trained on scikit-learn's bundled wine data
(13 chemical measurements, 3 cultivars; the data ships inside scikit-learn). A concept
axis names a feature and shifts it by a number of that feature's standard deviations;
a query fails when the shifted sample is misclassified. Restructure retrains the model
on the training split plus its copies under the chosen shifts.

Use it by naming it in a config (``examples/tabular.yaml``)::

    task: "examples.tabular_audit:TabularAudit"

The model is saved as plain arrays (``.npz``), never pickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import pydantic

from fadejax.audits import Audit, AuditError, RestructureRequest
from fadejax.core.strict import Strict
from fadejax.core.spaces import ConceptSpace


class TabularConfig(Strict):
    """The ``tabular`` section: which bundled data set, how it is split, and the model's
    weights (``None``: train a logistic regression on the training split, seeded)."""

    dataset: Literal["wine", "breast_cancer"] = "wine"
    held_out_fraction: float = pydantic.Field(0.4, gt=0.0, lt=1.0)
    split_seed: int = 0
    weights: str | None = None  # an .npz of coef, intercept (restructure writes one)


def _bunch(dataset: str):
    from sklearn import datasets

    return {"wine": datasets.load_wine, "breast_cancer": datasets.load_breast_cancer}[dataset]()


def feature_names(dataset: str) -> list[str]:
    return [str(n) for n in _bunch(dataset).feature_names]


def load_split(config: TabularConfig) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], list[str]]:
    """``((train X, y), (held-out X, y), feature names)``; X ``(N, F)`` float32 in the data's units."""
    from sklearn.model_selection import train_test_split

    bunch = _bunch(config.dataset)
    x, y = bunch.data.astype(np.float32), bunch.target.astype(np.int32)
    x_train, x_held, y_train, y_held = train_test_split(x, y, test_size=config.held_out_fraction, random_state=config.split_seed, stratify=y)
    return (x_train, y_train), (x_held, y_held), [str(n) for n in bunch.feature_names]


@dataclass
class LinearModel:
    """A trained linear classifier: ``logits = standardise(x) @ coef.T + intercept``."""

    mean: np.ndarray  # (F,)
    std: np.ndarray  # (F,)
    coef: np.ndarray  # (C, F)
    intercept: np.ndarray  # (C,)

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, seed: int = 0) -> "LinearModel":
        from sklearn.linear_model import LogisticRegression

        mean, std = x.mean(0), x.std(0) + 1e-6
        fitted = LogisticRegression(C=0.05, max_iter=2000, random_state=seed).fit((x - mean) / std, y)
        return cls(mean, std, fitted.coef_.astype(np.float32), fitted.intercept_.astype(np.float32))

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``(B, C)`` of samples ``(B, F)``."""
        logits = ((x - self.mean) / self.std) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> Path:
        np.savez(path, mean=self.mean, std=self.std, coef=self.coef, intercept=self.intercept)
        return path

    @classmethod
    def load(cls, path: str) -> "LinearModel":
        if not Path(path).is_file():
            raise AuditError(f"tabular.weights '{path}' does not exist")
        with np.load(path, allow_pickle=False) as z:
            return cls(z["mean"], z["std"], z["coef"], z["intercept"])


@dataclass
class TabularTask:
    """The :class:`fadejax.engine.task.AuditTask` of this audit. ``features`` ``(N, F)`` held-out
    samples on the device; each axis shifts feature ``shifted[i]`` by ``values[:, i] *
    scale[i]`` (its standard deviation)."""

    space: ConceptSpace
    features: jax.Array
    labels: np.ndarray
    observations: jax.Array
    shifted: jax.Array  # (num_axes,) int32 feature index per axis
    scale: jax.Array  # (num_axes,) float32
    model: LinearModel
    info: dict[str, Any]
    kind: str = "tabular"
    deterministic: bool = True  # the linear model answers a shifted sample the same every time

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    def prepare(self, sample: jax.Array, values: jax.Array, key: jax.Array) -> jax.Array:
        """Jittable: the shifted samples ``(B, F)``."""
        x = self.features[sample]
        return x.at[:, self.shifted].add(values.astype(jnp.float32) * self.scale)

    def evaluate(self, inputs: jax.Array, pending: dict[str, jax.Array]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The model on the host; reward ``1 - p(true class)``, failed when misclassified."""
        p = self.model.probabilities(np.asarray(inputs))
        labels = self.labels[np.asarray(pending["sample"])]
        predicted = p.argmax(axis=1)
        p_true = p[np.arange(labels.size), labels]
        core = {"reward": (1.0 - p_true).astype(np.float32), "failed": predicted != labels}
        return core, {"label": labels, "predicted": predicted, "p_true": p_true.round(4)}

    def replicate(self, sharding: Any) -> None:
        self.features, self.observations = jax.device_put((self.features, self.observations), sharding)


def build(config, model: LinearModel | None = None) -> TabularTask:
    """The task of a config of this audit (``model`` replaces the one the config names)."""
    section = config.tabular
    (x_train, y_train), (x_held, y_held), names = load_split(section)
    if model is None:
        model = LinearModel.load(section.weights) if section.weights else LinearModel.fit(x_train, y_train, section.split_seed)
    index = [names.index(axis.perturbation_name) for axis in config.space.axes]
    std = x_train.std(0)
    observations = (x_held - x_train.mean(0)) / (std + 1e-6)
    accuracy = float((model.probabilities(x_held).argmax(1) == y_held).mean())
    return TabularTask(
        space=config.concept_space(), features=jnp.asarray(x_held), labels=y_held, observations=jnp.asarray(observations, jnp.float32),
        shifted=jnp.asarray(index, jnp.int32), scale=jnp.asarray(std[index], jnp.float32), model=model,
        info={"data": section.dataset, "held_out_samples": int(y_held.size), "clean_accuracy": accuracy, "weights": section.weights},
    )


class TabularAudit(Audit):
    """A linear classifier of tabular data under feature shifts (in standard deviations)."""

    name = "tabular"
    sections = {"tabular": TabularConfig}
    example_view = "fields"  # the report lists each failure's record fields
    micro_alpha = 1.0
    restructure_defaults = (1, 0.0)  # one refit; a closed-form fit has no learning rate

    def default_axes(self) -> list[dict[str, Any]]:
        return [{"name": "proline", "values": [-2.0, -1.0, 0.0, 1.0, 2.0]},
                {"name": "flavanoids", "values": [-2.0, -1.0, 0.0, 1.0, 2.0]},
                {"name": "color_intensity", "values": [-2.0, 0.0, 2.0]}]

    def check_axes(self, axes) -> None:
        for i, axis in enumerate(axes):
            if axis.words:
                raise ValueError(f"space.axes.{i}: a feature shift needs numbers (standard deviations), got {axis.values}")

    def check_config(self, config) -> None:  # the features an axis may name depend on the data set
        names = feature_names(config.tabular.dataset)
        for i, axis in enumerate(config.space.axes):
            if axis.perturbation_name not in names:
                raise ValueError(f"space.axes.{i}: '{axis.perturbation_name}' is not a feature of '{config.tabular.dataset}'; "
                                 f"features: {names}")

    def axis_identity(self, config, index: int) -> float:
        return 0.0  # no shift

    def build_task(self, config, *, oracle: Any = None, progress: bool = True) -> TabularTask:
        return build(config, model=oracle)

    def restructure(self, run_dir: Path, config, modes: list[int], out: Path, request: RestructureRequest) -> dict[str, Any]:
        """Refit on the training split plus its copies shifted under each chosen mode, then
        rediscover and compare the held-out failure rate of each mode before and after."""
        from fadejax.engine.config import parse_config
        from fadejax.engine.ground_truth import failure_rates
        from fadejax.stages.restructure import link_rediscovery

        (x_train, y_train), _, names = load_split(config.tabular)
        space, std = config.concept_space(), x_train.std(0)
        copies = [x_train] if request.use_clean else []
        for mode in modes:
            shifted = x_train.copy()
            for axis, value in zip(config.space.axes, np.asarray(space.decode(jnp.int32(mode)))):
                j = names.index(axis.perturbation_name)
                shifted[:, j] += value * std[j]
            copies.append(shifted)
        labels = np.tile(y_train, len(copies))
        out.mkdir(parents=True, exist_ok=True)
        weights = LinearModel.fit(np.concatenate(copies), labels, config.run.seed).save(out / "model.npz")
        new_config = parse_config({**config.model_dump(mode="json"), "name": f"{config.name}-restructured",
                                   "tabular": {**config.tabular.model_dump(mode="json"), "weights": str(weights)}})
        old_task, new_task = build(config), build(new_config)
        rediscovery = link_rediscovery(new_config, new_task, run_dir, out, request.progress)
        before, after = failure_rates(old_task, np.asarray(modes)), failure_rates(new_task, np.asarray(modes))
        report = {
            "run": str(run_dir), "rediscovery": str(rediscovery), "model": str(weights),
            "clean_held_out_accuracy_before": old_task.info["clean_accuracy"], "clean_held_out_accuracy_after": new_task.info["clean_accuracy"],
            "modes": [{"cell": m, "concepts": space.describe(m), "held_out_failure_rate_before": float(b), "held_out_failure_rate_after": float(a),
                       "reduced": bool(a < b)} for m, b, a in zip(modes, before, after)],
        }
        (out / "shift_report.md").write_text(self.render_shift_report(report))
        return report

    def render_shift_report(self, report: dict[str, Any]) -> str:
        lines = [f"# Shift report for {report['run']}", "",
                 f"Clean held-out accuracy: {report['clean_held_out_accuracy_before']:.1%} → {report['clean_held_out_accuracy_after']:.1%}", "",
                 "| mode | concepts | failure rate before | after | reduced |", "|---|---|---|---|---|"]
        for m in report["modes"]:
            concepts = ", ".join(f"{k}={v:g}" for k, v in m["concepts"].items())
            lines.append(f"| {m['cell']} | {concepts} | {m['held_out_failure_rate_before']:.1%} | {m['held_out_failure_rate_after']:.1%} | "
                         f"{'yes' if m['reduced'] else 'no'} |")
        return "\n".join(lines) + "\n"
