"""Failure landscapes as RL environments, for agents from the user's own RL library.

* :mod:`fadejax.envs.recorded`: a recording (a real model's answer to every pair) as a
  JAX-native environment with gymnax's interface, macro or micro: pure, jittable,
  ``vmap``-able, millions of steps a second.
* :mod:`fadejax.envs.names`: the named ones (``fadejax/digits-macro-v0``, ...) with their
  budgets; :mod:`fadejax.envs.catalogue` makes them (:func:`make`), and any user's
  recording (:func:`make_from`).
* :mod:`fadejax.envs.scoring`: what an agent found, scored as Table 1 scores fadejax's searchers.
* :mod:`fadejax.envs.gym`: the same names as gymnasium environments of the live audits.

The JAX environments need the ``rl`` extra (gymnax; rejax for ``benchmarks/rl_suite.py``):
``pip install 'fadejax[rl]'``. Importing this package imports neither: :func:`make` and
:func:`make_from` load them when called.
"""

from __future__ import annotations

from fadejax.envs.names import NAMED


def make(name: str, **kwargs):
    """:func:`fadejax.envs.catalogue.make`."""
    from fadejax.envs import catalogue

    return catalogue.make(name, **kwargs)


def make_from(config, recording, **kwargs):
    """:func:`fadejax.envs.catalogue.make_from`."""
    from fadejax.envs import catalogue

    return catalogue.make_from(config, recording, **kwargs)


__all__ = ["NAMED", "make", "make_from"]
