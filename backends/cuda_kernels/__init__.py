"""The CUDA kernels both GPU backends run: every ``.cu`` file once, one common header
(``common.cuh``), one loader (:mod:`.loader`) that assembles a file's source for PyCUDA
and for CuPy, and the launch geometry both use (:mod:`.grids`). Importing this package
needs no CUDA."""
