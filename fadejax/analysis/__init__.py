"""Estimates and scores of failure landscapes, from a run's answers.

Per-cell failure-rate estimates with intervals (:mod:`~fadejax.analysis.estimates`),
the paper's metrics and recall against ground truth (:mod:`~fadejax.analysis.metrics`),
Wasserstein barycenters of modes (:mod:`~fadejax.analysis.barycenters`), the POT
import they share (:mod:`~fadejax.analysis.pot`), and corruption-robustness figures
(:mod:`~fadejax.analysis.robustness`: CE, mCE, interactions of combined corruptions).

May import: :mod:`fadejax.searchers` (the posterior model the estimates share with the
default searcher) and :mod:`fadejax.core`.
"""
