"""The stages a user runs, one module each: ``fadejax discover`` (:mod:`~fadejax.stages.discover`),
``summarize`` (:mod:`~fadejax.stages.summarize`, drawn by :mod:`~fadejax.stages.report`
and :mod:`~fadejax.stages.figures`, with a model family's comparison from
:mod:`~fadejax.stages.family` and the common corruptions' figures from
:mod:`~fadejax.stages.corruption_report`), ``compare`` (:mod:`~fadejax.stages.compare`),
``restructure`` (:mod:`~fadejax.stages.restructure`, launching fine-tunes through
:mod:`~fadejax.stages.finetune`), ``fade`` (:mod:`~fadejax.stages.fade`, its rounds of
restructures, reported by :mod:`~fadejax.stages.fade_report`) and ``init``
(:mod:`~fadejax.stages.starter`).

May import: :mod:`fadejax.engine` and below. An audit's part of a stage is reached
through its :class:`~fadejax.engine.audit.Audit` methods, never by importing it.
"""
