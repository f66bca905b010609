"""The CPU reference backend: NumPy, vectorised over batch and time."""
from .backend import NumpyBackend

__all__ = ["NumpyBackend"]
