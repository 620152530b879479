"""The engine: a config becomes a task, a searcher and a loop, whose answers land in a
run directory that can be resumed, checked and shared.

- :mod:`~fadejax.engine.config`: the YAML config as typed models; :mod:`~fadejax.engine.registry`
  (audit name -> :class:`~fadejax.engine.audit.Audit`) is all it knows of audits;
- :mod:`~fadejax.engine.task`: the :class:`~fadejax.engine.task.AuditTask` interface the
  loop runs; :mod:`~fadejax.engine.build`: the config's task, or a recording in its place;
- :mod:`~fadejax.engine.loop`: one discovery iteration (propose, ask, learn), jitted;
  :mod:`~fadejax.engine.fused`: many seeds or settings in one compiled program;
- :mod:`~fadejax.engine.checkpoints`: the loop state on disk;
- :mod:`~fadejax.engine.ground_truth` and :mod:`~fadejax.engine.recording`: exhaustive
  landscapes and replayable recordings of them;
- :mod:`fadejax.engine.store`: the run directory's files (records, learning curves,
  locks, trust);
- :mod:`~fadejax.engine.compilation_cache`: JAX's persistent compilation cache.

May import: :mod:`fadejax.analysis`, :mod:`fadejax.searchers`, :mod:`fadejax.core`.
Never an audit (the registry finds them by name) and never a stage.
"""
