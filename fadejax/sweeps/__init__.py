"""``fadejax sweep``: grids of discovery runs as Ray tasks.

The spec file and its expansion into points (:mod:`~fadejax.sweeps.spec`), running and
resuming them (:mod:`~fadejax.sweeps.runner`) and the table across seeds
(:mod:`~fadejax.sweeps.report`).

May import: :mod:`fadejax.stages` and below; never an audit.
"""
