"""The stages a user runs, one module each: ``fadejax discover`` (:mod:`~fadejax.stages.discover`),
``summarize`` (:mod:`~fadejax.stages.summarize`, drawn by :mod:`~fadejax.stages.report`
and :mod:`~fadejax.stages.figures`, with a model family's comparison from
:mod:`~fadejax.stages.family`), ``compare`` (:mod:`~fadejax.stages.compare`) and
``restructure`` (:mod:`~fadejax.stages.restructure`, launching fine-tunes through
:mod:`~fadejax.stages.finetune`).

May import: :mod:`fadejax.engine` and below. An audit's part of a stage is reached
through its :class:`~fadejax.engine.audit.Audit` methods, never by importing it.
"""
