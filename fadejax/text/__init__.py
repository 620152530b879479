"""Text-audit building blocks: text edits (``fadejax.text.edits``) and their helpers."""
