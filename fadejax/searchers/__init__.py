"""Searchers: the DQN and the paper's baselines (random, epsilon-greedy, threshold, Bayesian optimisation), on one interface.

``REGISTRY`` maps a config's ``searcher.kind`` to ``(config model, searcher class)``.
Adding a searcher = one new module here plus one line below.
"""

from __future__ import annotations

from fadejax.searchers.base import Searcher, SearcherConfig, Transition
from fadejax.searchers.bayes import BayesConfig, BayesOpt
from fadejax.searchers.bootstrapped import BootstrappedConfig, BootstrappedDQN
from fadejax.searchers.cem import CEMConfig, CrossEntropy
from fadejax.searchers.dqn import DQN, DQNConfig
from fadejax.searchers.greedy import EpsilonGreedy, GreedyConfig
from fadejax.searchers.posterior import PosteriorConfig, PosteriorSampling
from fadejax.searchers.posterior_walk import PosteriorWalk, PosteriorWalkConfig
from fadejax.searchers.policy_gradient import Reinforce, ReinforceConfig
from fadejax.searchers.random_search import RandomConfig, RandomSearch
from fadejax.searchers.threshold import Threshold, ThresholdConfig
from fadejax.searchers.thompson import BayesUCB, ThompsonConfig, ThompsonSampling, UCBConfig

REGISTRY: dict[str, tuple[type[SearcherConfig], type[Searcher]]] = {
    "dqn": (DQNConfig, DQN),
    "bootstrapped": (BootstrappedConfig, BootstrappedDQN),
    "posterior": (PosteriorConfig, PosteriorSampling),
    "posterior_walk": (PosteriorWalkConfig, PosteriorWalk),
    "random": (RandomConfig, RandomSearch),
    "greedy": (GreedyConfig, EpsilonGreedy),
    "threshold": (ThresholdConfig, Threshold),
    "bayes": (BayesConfig, BayesOpt),
    "thompson": (ThompsonConfig, ThompsonSampling),
    "ucb": (UCBConfig, BayesUCB),
    "cem": (CEMConfig, CrossEntropy),
    "reinforce": (ReinforceConfig, Reinforce),
}

__all__ = ["REGISTRY", "Searcher", "SearcherConfig", "Transition", "DQN", "DQNConfig"]
