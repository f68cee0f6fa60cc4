"""Flax NNX pieces shared by gasolve's two networks (:mod:`nnselect` and :mod:`symnet`): the residual block
and backbone, train/eval views, and the weights file format. Imported only by the network packages, so ``gasolve run``
without ``[nn]`` never loads JAX."""
