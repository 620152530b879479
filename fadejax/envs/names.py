"""The named environments: every shipped recording as a JAX environment, with its budget.

Each name stands for one audit: a shipped config (its concept space, mode and micro
settings) answered by a shipped recording (a real model's answer to every pair). The same
name made with ``gymnasium.make`` gives the live audit of that config
(:mod:`fadejax.envs.gym`). This module imports nothing heavy, so gymnasium's registration
does not need gymnax.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: the repository's root, where ``configs/`` and ``recordings/`` are
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Named:
    """One named environment.

    Attributes:
      name: gymnax / gymnasium id, ``fadejax/<audit>-<mode>-v<version>``.
      config: the shipped config, relative to the repository root.
      recording: the shipped recording, relative to the repository root.
      budget: queries per benchmark run (Table 1's: 12,800 on the image audits, 2,560 on text).
      about: one line for listings.
    """

    name: str
    config: str
    recording: str
    budget: int
    about: str


NAMED: dict[str, Named] = {n.name: n for n in (
    Named("fadejax/digits-macro-v0", "configs/digits.yaml", "recordings/digits.npz", 12_800,
          "embedded digits CNN under rotation x darkness x blur (540 samples x 125 cells), one query per episode"),
    Named("fadejax/digits-micro-v0", "configs/digits_micro.yaml", "recordings/digits.npz", 12_800,
          "the same answers walked one notch per step from (rotation 0, darkness 0, blur 0), at most 10 moves"),
    Named("fadejax/lenet-macro-v0", "configs/digits_lenet.yaml", "recordings/digits_lenet.npz", 12_800,
          "embedded LeNet-5 under shift x occlusion x gamma (540 x 125), one query per episode"),
    Named("fadejax/lenet-micro-v0", "configs/digits_lenet_micro.yaml", "recordings/digits_lenet.npz", 12_800,
          "the LeNet answers walked from (no shift, no occlusion, gamma 1), at most 10 moves"),
    Named("fadejax/summarize-macro-v0", "configs/summarize.yaml", "recordings/summarize.npz", 2_560,
          "tiny T5 summarizer under 17 text edits (200 articles x 17 cells), one query per episode"),
)}
