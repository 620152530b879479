"""Searchers: the DQN and the paper's baselines (random, epsilon-greedy, threshold, Bayesian optimisation), on one interface.

``REGISTRY`` maps a config's ``searcher.kind`` to ``(config model, searcher class)``.
Adding a searcher = one new module here plus one line below.
"""

from __future__ import annotations

from fadejax.searchers.base import Searcher, SearcherConfig, Transition
from fadejax.searchers.bayes import BayesConfig, BayesOpt
from fadejax.searchers.dqn import DQN, DQNConfig
from fadejax.searchers.greedy import EpsilonGreedy, GreedyConfig
from fadejax.searchers.random_search import RandomConfig, RandomSearch
from fadejax.searchers.threshold import Threshold, ThresholdConfig

REGISTRY: dict[str, tuple[type[SearcherConfig], type[Searcher]]] = {
    "dqn": (DQNConfig, DQN),
    "random": (RandomConfig, RandomSearch),
    "greedy": (GreedyConfig, EpsilonGreedy),
    "threshold": (ThresholdConfig, Threshold),
    "bayes": (BayesConfig, BayesOpt),
}

__all__ = ["REGISTRY", "Searcher", "SearcherConfig", "Transition", "DQN", "DQNConfig"]
