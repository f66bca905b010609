"""The PyCUDA GPU backend: the op contract as hand-written CUDA kernels
(:mod:`genrecnn.backends.cuda_kernels`); importable without PyCUDA."""
from .backend import PycudaBackend

__all__ = ["PycudaBackend"]
