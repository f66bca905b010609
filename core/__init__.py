"""genrecnn: music-genre classification with a backend-agnostic ConvNet.

Layers are written once against the op contract in :mod:`genrecnn.engine.ops`;
backends (NumPy, PyCUDA, CuPy and third-party plugins) implement it and are
found through pluggy (:mod:`genrecnn.engine.registry`).
"""
__version__ = "0.1.0"
