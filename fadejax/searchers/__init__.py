"""Searchers: the DQN and, in later issues, baselines; all on one interface.

``REGISTRY`` maps a config's ``searcher.kind`` to ``(config model, searcher class)``.
Adding a searcher = one new module here plus one line below.
"""

from __future__ import annotations

from fadejax.searchers.base import Searcher, SearcherConfig, Transition
from fadejax.searchers.dqn import DQN, DQNConfig

REGISTRY: dict[str, tuple[type[SearcherConfig], type[Searcher]]] = {
    "dqn": (DQNConfig, DQN),
}

__all__ = ["REGISTRY", "Searcher", "SearcherConfig", "Transition", "DQN", "DQNConfig"]
