"""PyCUDA backend: the op contract as hand-written CUDA kernels (the .cu files here)."""
