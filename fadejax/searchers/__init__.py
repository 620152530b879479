"""Searchers: the DQN and the paper's baselines (random, epsilon-greedy, threshold, Bayesian optimisation), on one interface.

``REGISTRY`` maps a config's ``searcher.kind`` to ``(config model, searcher class)``.
Adding a searcher = one new module here plus one line below, or, for a searcher kept
outside fadejax, :func:`register` from its own module (``benchmarks/table1.py --plugin
FILE`` imports such a module; see ``docs/benchmark-your-searcher.md``).

The learning searchers live here; the baselines in :mod:`fadejax.searchers.baselines`.
May import: :mod:`fadejax.core` only.
"""

from __future__ import annotations

from fadejax.searchers.base import Searcher, SearcherConfig, Transition
from fadejax.searchers.baselines.bayes import BayesConfig, BayesOpt
from fadejax.searchers.bootstrapped import BootstrappedConfig, BootstrappedDQN
from fadejax.searchers.baselines.cem import CEMConfig, CrossEntropy
from fadejax.searchers.dqn import DQN, DQNConfig
from fadejax.searchers.baselines.greedy import EpsilonGreedy, GreedyConfig
from fadejax.searchers.posterior import PosteriorConfig, PosteriorSampling
from fadejax.searchers.posterior_walk import PosteriorWalk, PosteriorWalkConfig
from fadejax.searchers.policy_gradient import Reinforce, ReinforceConfig
from fadejax.searchers.baselines.random_search import RandomConfig, RandomSearch
from fadejax.searchers.baselines.threshold import Threshold, ThresholdConfig
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



def register(config_cls: type[SearcherConfig], searcher_cls: type[Searcher]) -> str:
    """Add a searcher defined outside fadejax; returns its kind (the config's ``kind`` default).

    Raises ``ValueError`` if the config has no ``kind`` default, the class is not a
    :class:`Searcher`, or the kind is taken by another searcher (registering the same
    pair again is allowed, so a module may be imported twice).
    """
    kind = config_cls.model_fields["kind"].default
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"{config_cls.__name__}.kind needs a default naming the searcher, e.g. kind: Literal['mine'] = 'mine'")
    if not (isinstance(searcher_cls, type) and issubclass(searcher_cls, Searcher)):
        raise ValueError(f"{searcher_cls!r} is not a subclass of fadejax.searchers.base.Searcher")
    if kind in REGISTRY and REGISTRY[kind] != (config_cls, searcher_cls):
        raise ValueError(f"searcher kind '{kind}' is already registered ({REGISTRY[kind][1].__module__}.{REGISTRY[kind][1].__name__}); choose another kind")
    REGISTRY[kind] = (config_cls, searcher_cls)
    return kind


__all__ = ["REGISTRY", "register", "Searcher", "SearcherConfig", "Transition", "DQN", "DQNConfig"]
