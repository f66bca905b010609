"""The CuPy GPU backend: cuBLAS GEMMs plus CuPy kernels; importable without CuPy."""
from .backend import CupyBackend

__all__ = ["CupyBackend"]
