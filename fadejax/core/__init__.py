"""The bottom layer: what a failure landscape is made of, with no notion of a run.

Concept spaces and their cells (:mod:`~fadejax.core.spaces`), image perturbations
(:mod:`~fadejax.core.perturbations`) and the XLA flags that keep them fused
(:mod:`~fadejax.core.fusion`), the macro/micro rewards (:mod:`~fadejax.core.rewards`),
array views of landscapes (:mod:`~fadejax.core.landscapes`), neighbour walks
(:mod:`~fadejax.core.walks`), the strict pydantic base every config section uses
(:mod:`~fadejax.core.strict`) and the captioned-image folder format
(:mod:`~fadejax.core.captions`).

May import: nothing of fadejax.
"""
