"""The run directory on disk: what a run writes, and the rules for sharing it.

Records (:mod:`~fadejax.engine.store.records`; their names and fields
:mod:`~fadejax.engine.store.record_fields`; columnar files
:mod:`~fadejax.engine.store.arrow_records`; JSON lines :mod:`~fadejax.engine.store.jsonl_format`,
formatted by :mod:`~fadejax.engine.store.json_columns`; read back in columns, either format,
by :mod:`~fadejax.engine.store.record_columns`), learning curves
(:mod:`~fadejax.engine.store.learning_log`, mirrored to TensorBoard / W&B by
:mod:`~fadejax.engine.store.sinks`), append-only files that survive a crash
(:mod:`~fadejax.engine.store.durable`), one writer per directory
(:mod:`~fadejax.engine.store.dirlock`), the layout and its config
(:mod:`~fadejax.engine.store.rundir`), integrity checks
(:mod:`~fadejax.engine.store.run_check`) and what a shared directory may make fadejax
import or read (:mod:`~fadejax.engine.store.trust`).

May import: :mod:`fadejax.engine.config`, :mod:`fadejax.engine.registry` and below.
"""
