"""fadejax: find, summarize and fade the failure modes of trained models.

The JAX engine, in layers (each imports only those below it; ``.importlinter`` states
them and ``docs/architecture.md`` walks through them):

- :mod:`fadejax.cli`: the ``fadejax`` command;
- :mod:`fadejax.sweeps` (grids of runs on Ray) and :mod:`fadejax.audits` (what is audited: plugins);
- :mod:`fadejax.stages`: discover, summarize, report, compare, restructure;
- :mod:`fadejax.engine`: config, the discovery loop, run directories and their records;
- :mod:`fadejax.analysis`: estimates and metrics of failure landscapes;
- :mod:`fadejax.searchers`: the failure-finders (RL and baselines);
- :mod:`fadejax.core`: concept spaces, perturbations, rewards, landscapes' array views.

Importing it never imports torch; the audited-model bridges in the top-level ``bridges``
package do, and are loaded only when a run needs them.
"""

from fadejax import moved as _moved

__version__ = "0.1.0"

_moved.install()
