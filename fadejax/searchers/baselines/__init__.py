"""The paper's baselines and the classical searchers: random search, epsilon-greedy,
threshold, Bayesian optimisation, cross-entropy, and the visit counts they share
(:mod:`~fadejax.searchers.baselines.counting`).

May import: :mod:`fadejax.searchers.base` and :mod:`fadejax.core`.
"""
