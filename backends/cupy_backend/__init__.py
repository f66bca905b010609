"""The CuPy GPU backend: cuBLAS GEMMs plus the hand-written kernels PyCUDA runs
(:mod:`genrecnn.backends.cuda_kernels`); importable without CuPy."""
from .backend import CupyBackend

__all__ = ["CupyBackend"]
