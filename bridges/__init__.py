"""The thin PyTorch side of fadejax: audited-model oracles, weight loading, array hand-over.

Everything here imports torch; the JAX engine (``fadejax``) imports these modules only
when a run needs an audited torch model.
"""
