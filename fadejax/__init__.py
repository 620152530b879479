"""fadejax: find, summarize and fade the failure modes of trained models.

The JAX engine. Importing it never imports torch; the audited-model bridges in the
top-level ``bridges`` package do, and are loaded only when a run needs them.
"""

__version__ = "0.1.0"
