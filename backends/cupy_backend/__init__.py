"""The CuPy GPU backend: cuBLAS GEMMs plus hand-written kernels (the .cu files here);
importable without CuPy."""
from .backend import CupyBackend

__all__ = ["CupyBackend"]
