"""The PyCUDA GPU backend: the op contract as hand-written CUDA kernels (the .cu files
here); importable without PyCUDA."""
from .backend import PycudaBackend

__all__ = ["PycudaBackend"]
