"""The named environments as gymnasium environments of the *live* audits.

Importing this module registers every image audit of :data:`fadejax.envs.names.NAMED`
with gymnasium, so that::

    import gymnasium, fadejax.envs.gym
    env = gymnasium.make("fadejax/digits-macro-v0")      # or "fadejax.envs.gym:fadejax/digits-macro-v0"

builds the audit of the named config (its data, its audited model, trained once and cached)
as a :class:`fadejax.audits.image.gym_env.AuditEnv`: one audited-model query per step,
for agents from any gymnasium library. ``gymnasium.make("fadejax/audit-v0", config=PATH)``
does the same for any image config. The JAX environment of the same name
(:func:`fadejax.envs.make`) answers from the recording instead, millions of times faster.

The text audit's environment (``fadejax/summarize-macro-v0``) is a JAX one only: its live
queries generate summaries with a seq2seq model, and it has no gymnasium class.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium

from fadejax.engine.build import build_task
from fadejax.engine.config import load_config
from fadejax.envs.names import NAMED, ROOT

#: the id that takes any image config: ``gymnasium.make(GENERIC, config=PATH)``
GENERIC = "fadejax/audit-v0"


def make_live(config: str | Path, overrides: list[str] | None = None) -> gymnasium.Env:
    """The live audit of ``config`` (a path; ``overrides``: ``FIELD=VALUE`` as ``--set``)
    as a gymnasium environment, macro or micro as the config says (image audits: the
    audit's ``live_gymnasium``)."""
    loaded = load_config(config, overrides or [])
    if not loaded.audit.live_gymnasium:
        raise ValueError(f"{config}: only image audits have a live gymnasium environment (this one is '{loaded.audit.name}'); "
                         "its recording opens as a JAX environment with fadejax.envs.make_from")
    return loaded.audit.gymnasium_env(loaded, build_task(loaded, progress=False))


def _live_names() -> dict[str, Path]:
    """The named environments that have a live gymnasium form, with their configs."""
    return {name: ROOT / n.config for name, n in NAMED.items() if load_config(ROOT / n.config).audit.live_gymnasium}


def register() -> list[str]:
    """Register the live environments with gymnasium (again is harmless); returns their ids."""
    ids = []
    for name, config in _live_names().items():
        if name not in gymnasium.registry:
            gymnasium.register(id=name, entry_point=f"{__name__}:make_live", kwargs={"config": str(config)}, disable_env_checker=False)
        ids.append(name)
    if GENERIC not in gymnasium.registry:
        gymnasium.register(id=GENERIC, entry_point=f"{__name__}:make_live")
    return ids + [GENERIC]


register()
