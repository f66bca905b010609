"""The PyCUDA backend: every op of the contract as a hand-written CUDA kernel.

Kernels live in the ``.cu`` files beside this module (see :mod:`.kernels` for
how they are compiled and cached). Arrays are ``pycuda.gpuarray.GPUArray``
allocated from one memory pool; the backend works in the device's *primary*
context (``pycuda.autoprimaryctx``), the one CuPy uses, so arrays cross
between the two without copies. Everything runs on the default stream, so
launches are ordered and only ``to_host``, ``loss`` and ``synchronize`` wait.

Importing this module needs neither PyCUDA nor a GPU: PyCUDA is imported when
the backend is instantiated, after :meth:`PycudaBackend.availability` said yes.
"""
from __future__ import annotations

import atexit
import importlib.util
import shutil

import numpy as np

from genrecnn.errors import ShapeError
from genrecnn.engine.ops import ACTIVATIONS, Backend, conv1d_out_width, maxpool1d_out_width

from .batches import PycudaBatchOps
from .kernels import KernelCache
from .maps import PycudaMapOps

BLOCK = 256
# GEMM tilings (block tile BM x BN, reduction slice BK, per-thread TM x TN); both use 256 threads.
SMALL_TILE = {"BM": 64, "BN": 64, "BK": 16, "TM": 4, "TN": 4}
LARGE_TILE = {"BM": 128, "BN": 128, "BK": 8, "TM": 8, "TN": 8}
_ACT_CODE = {kind: i for i, kind in enumerate(ACTIVATIONS)}


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def probe() -> tuple[bool, str]:
    """Can this machine run the backend? Never raises; the reason says what is missing."""
    try:
        if importlib.util.find_spec("pycuda") is None:
            return False, "pycuda not installed (pip install 'genrecnn[pycuda]')"
    except Exception as exc:  # a broken installation is a reason too
        return False, f"pycuda not importable: {exc}"
    try:
        import pycuda.driver as drv
    except Exception as exc:
        if "libcuda" in str(exc):
            return False, "no CUDA driver (libcuda not found)"
        return False, f"pycuda failed to import: {type(exc).__name__}: {exc}"
    try:
        drv.init()
    except Exception as exc:
        return False, f"no CUDA driver: {exc}"
    try:
        count = drv.Device.count()
    except Exception as exc:
        return False, f"no CUDA GPU found: {exc}"
    if count == 0:
        return False, "no CUDA GPU found"
    if shutil.which("nvcc") is None:
        return False, "nvcc not found on PATH (PyCUDA compiles the kernels with it)"
    return True, ""


class PycudaBackend(PycudaMapOps, PycudaBatchOps, Backend):
    """Hand-written CUDA kernels through PyCUDA, float32 and float64."""

    name = "pycuda"
    device = "cuda"
    dtypes = ("float32", "float64")

    @classmethod
    def availability(cls):
        return probe()

    def __init__(self):
        import pycuda.autoprimaryctx as primary   # never autoinit: share CuPy's context
        import pycuda.driver as drv
        import pycuda.gpuarray as gpuarray
        import pycuda.tools

        self._drv = drv
        self._GPUArray = gpuarray.GPUArray
        self._pool = pycuda.tools.DeviceMemoryPool()
        self.kernels = KernelCache()
        self.sm_count = primary.device.get_attribute(drv.device_attribute.MULTIPROCESSOR_COUNT)
        # Runs before autoprimaryctx pops the context (atexit is last-in, first-out).
        atexit.register(self._release_pool)

    def _release_pool(self) -> None:
        try:
            self._pool.stop_holding()
        except Exception:  # interpreter shutdown: nothing useful to report
            pass

    # -- helpers ---------------------------------------------------------------------------

    def _empty(self, shape, dtype):
        return self._GPUArray(tuple(int(s) for s in shape), np.dtype(dtype),
                              allocator=self._pool.allocate)

    @staticmethod
    def _ptr(a) -> int:
        return 0 if a.gpudata is None else int(a.gpudata)

    def _zero_fill(self, a) -> None:
        if a.nbytes:
            self._drv.memset_d8(self._ptr(a), 0, a.nbytes)

    @staticmethod
    def _dtype(*arrays) -> str:
        dt = str(arrays[0].dtype)
        if dt not in PycudaBackend.dtypes:
            raise ShapeError(f"pycuda backend got a {dt} array; it computes in float32 or float64")
        for a in arrays[1:]:
            if str(a.dtype) != dt:
                raise ShapeError(f"pycuda backend got mixed dtypes {dt} and {a.dtype}; "
                                 f"convert the arrays to one dtype")
        return dt

    @staticmethod
    def _index_array(a, shape, what: str) -> None:
        if str(a.dtype) != "int32" or tuple(a.shape) != tuple(shape):
            raise ShapeError(f"{what} must be int32 of shape {tuple(shape)}, "
                             f"got {a.dtype} {tuple(a.shape)}")

    def _grid1d(self, n: int) -> tuple[int, int, int]:
        return (max(1, min(_cdiv(n, BLOCK), self.sm_count * 32)), 1, 1)

    def _launch(self, file, name, arg_types, dtype, grid, block, *args, **consts):
        func = self.kernels.get(file, name, arg_types, dtype, **consts)
        func.prepared_call(grid, block, *args)

    def _elementwise(self, name, arg_types, dtype, n, *args, file="elementwise.cu", **consts):
        if n:
            self._launch(file, name, arg_types, dtype, self._grid1d(n), (BLOCK, 1, 1), *args,
                         **consts)

    def _tile(self, m: int, n: int, batches: int) -> dict:
        """The large tiling when it still fills the GPU twice over, else the small one."""
        big = _cdiv(m, 128) * _cdiv(n, 128) * batches
        return LARGE_TILE if m >= 128 and n >= 128 and big >= 2 * self.sm_count else SMALL_TILE

    def _gemm(self, name, dtype, m, n, batches, tile, args, arg_types, **consts):
        grid = (_cdiv(n, tile["BN"]), _cdiv(m, tile["BM"]), batches)
        self._launch("gemm.cu", name, arg_types, dtype, grid, (BLOCK, 1, 1), *args,
                     **tile, **consts)

    # -- moving arrays ---------------------------------------------------------------------

    def from_host(self, a):
        a = np.ascontiguousarray(a)
        out = self._empty(a.shape, a.dtype)
        if a.nbytes:
            self._drv.memcpy_htod(self._ptr(out), a)
        return out

    def to_host(self, x):
        out = np.empty(tuple(x.shape), dtype=x.dtype)
        if out.nbytes:
            self._drv.memcpy_dtoh(out, self._ptr(x))
        return out

    def zeros(self, shape, dtype):
        out = self._empty(shape, dtype)
        self._zero_fill(out)
        return out

    def adopt(self, x, source):
        """Wrap another CUDA backend's array in place (``__cuda_array_interface__``);
        non-contiguous ones are copied on the device; host arrays go through from_host."""
        if source is self or isinstance(x, self._GPUArray):
            return x
        cai = getattr(x, "__cuda_array_interface__", None)
        if cai is None:
            return super().adopt(x, source)
        shape = tuple(int(s) for s in cai["shape"])
        dtype = np.dtype(cai["typestr"])
        ptr = int(cai["data"][0])
        stream = cai.get("stream")
        if stream not in (None, 1, 2):   # a stream that may not order with ours: wait for it
            self._drv.Context.synchronize()
        contiguous = [dtype.itemsize]
        for extent in reversed(shape[1:]):
            contiguous.insert(0, contiguous[0] * extent)
        strides = cai.get("strides")
        if strides is None or all(s == c for s, c, e in zip(strides, contiguous, shape) if e > 1):
            return self._GPUArray(shape, dtype, gpudata=ptr, base=x)
        out = self._empty(shape, dtype)
        n = out.size
        if n:
            dims = self.from_host(np.array(list(shape) + list(strides), dtype=np.int64))
            self._elementwise("strided_copy", "PPqiiP", "float32", n, ptr, self._ptr(out), n,
                              len(shape), dtype.itemsize, self._ptr(dims))
        return out

    def synchronize(self):
        self._drv.Context.synchronize()

    # -- convolution -----------------------------------------------------------------------

    def _conv_shapes(self, x, w):
        if len(x.shape) != 3 or len(w.shape) != 3 or x.shape[1] != w.shape[1]:
            raise ShapeError(f"conv1d needs x[N, C, W] and w[F, C, K]; got {tuple(x.shape)} "
                             f"and {tuple(w.shape)}")
        (n, c, width), (f, _, k) = x.shape, w.shape
        if width < k:
            raise ShapeError(f"conv1d input has {width} time steps, fewer than the kernel "
                             f"width {k}")
        return n, c, width, f, k

    def conv1d(self, x, w, b):
        dt = self._dtype(x, w, b)
        n, c, width, f, k = self._conv_shapes(x, w)
        if tuple(b.shape) != (f,):
            raise ShapeError(f"conv1d bias has shape {tuple(b.shape)}, expected ({f},)")
        wo = conv1d_out_width(width, k)
        y = self._empty((n, f, wo), dt)
        if y.size:
            self._gemm("conv1d_fwd", dt, f, wo, n, self._tile(f, wo, n),
                       (self._ptr(x), self._ptr(w), self._ptr(b), self._ptr(y), c, width, f),
                       "PPPPiii", KW=k)
        return y

    def conv1d_backward(self, x, w, dy):
        dt, (n, c, width, f, k), dw, db = self._conv_param_grads(x, w, dy)
        dx = self._empty((n, c, width), dt)
        if n:
            self._gemm("conv1d_dx", dt, c, width, n, self._tile(c, width, n),
                       (self._ptr(dy), self._ptr(w), self._ptr(dx), c, width, f), "PPPiii", KW=k)
        return dx, dw, db

    def conv1d_backward_params(self, x, w, dy):
        return self._conv_param_grads(x, w, dy)[2:]

    def _conv_param_grads(self, x, w, dy):
        """Check shapes, then dw and db; returns (dtype, shapes, dw, db)."""
        dt = self._dtype(x, w, dy)
        shapes = n, c, width, f, k = self._conv_shapes(x, w)
        wo = conv1d_out_width(width, k)
        if tuple(dy.shape) != (n, f, wo):
            raise ShapeError(f"conv1d_backward dy has shape {tuple(dy.shape)}, "
                             f"expected {(n, f, wo)}")
        dw = self._empty((f, c, k), dt)
        db = self._empty((f,), dt)
        if n == 0:
            self._zero_fill(dw)
            self._zero_fill(db)
            return dt, shapes, dw, db
        self._conv_dw(x, dy, dw, dt, n, c, width, f, k, wo)
        self._launch("reduce.cu", "sum_nq", "PPiii", dt, (f, 1, 1), (BLOCK, 1, 1),
                     self._ptr(dy), self._ptr(db), n, f, wo)
        return dt, shapes, dw, db

    def _conv_dw(self, x, dy, dw, dt, n, c, width, f, k, wo):
        """dw by split-K: the N*Wo reduction is cut into S slices so that small
        F x C*K outputs still fill the GPU; sum_splits adds the slices."""
        ck = c * k
        most = min(max(1, (n * wo) // 256), max(1, (1 << 26) // (f * ck)))   # slices: >= 256
        tile = self._tile(f, ck, most)                      # steps each, <= 64M partial sums
        tiles = _cdiv(f, tile["BM"]) * _cdiv(ck, tile["BN"])
        want = min(most, max(1, _cdiv(4 * self.sm_count, tiles)))
        if want <= n:
            nper, ts, tchunk = _cdiv(n, want), 1, wo
            splits = _cdiv(n, nper)
        else:
            nper = 1
            ts = min(_cdiv(want, n), max(1, _cdiv(wo, 256)))
            tchunk = _cdiv(_cdiv(wo, ts), tile["BK"]) * tile["BK"]
            ts = _cdiv(wo, tchunk)
            splits = n * ts
        part = dw if splits == 1 else self._empty((splits, f * ck), dt)
        self._gemm("conv1d_dw", dt, f, ck, splits, tile,
                   (self._ptr(x), self._ptr(dy), self._ptr(part), n, c, width, f, nper, tchunk, ts),
                   "PPPiiiiiii", KW=k)
        if splits > 1:
            self._elementwise("sum_splits", "PPiqPi", dt, f * ck, self._ptr(part),
                              self._ptr(dw), splits, f * ck, 0, 1, file="reduce.cu")

    # -- pooling ---------------------------------------------------------------------------

    def maxpool1d(self, x, size, stride):
        dt = self._dtype(x)
        if len(x.shape) != 3 or size < 1 or stride < 1 or x.shape[2] < size:
            raise ShapeError(f"maxpool1d needs x[N, C, W] with W >= size >= 1 and stride >= 1; "
                             f"got {tuple(x.shape)}, size {size}, stride {stride}")
        n, c, width = x.shape
        wo = maxpool1d_out_width(width, size, stride)
        y = self._empty((n, c, wo), dt)
        am = self._empty((n, c, wo), np.int32)
        self._elementwise("maxpool_fwd", "PPPqiiii", dt, y.size, self._ptr(x), self._ptr(y),
                          self._ptr(am), n * c, width, wo, int(size), int(stride), file="pool.cu")
        return y, am

    def maxpool1d_backward(self, dy, argmax, width):
        dt = self._dtype(dy)
        self._index_array(argmax, dy.shape, "maxpool1d_backward argmax")
        n, c, wo = dy.shape
        dx = self.zeros((n, c, width), dt)
        self._elementwise("maxpool_bwd", "PPPqii", dt, dy.size, self._ptr(dy), self._ptr(argmax),
                          self._ptr(dx), n * c, int(width), wo, file="pool.cu")
        return dx

    def global_pool(self, x):
        dt = self._dtype(x)
        if len(x.shape) != 3 or x.shape[2] < 1:
            raise ShapeError(f"global_pool needs x[N, C, W] with W >= 1; got {tuple(x.shape)}")
        n, c, width = x.shape
        y = self._empty((n, 3 * c), dt)
        am = self._empty((n, c), np.int32)
        rows = n * c
        if rows:
            self._launch("pool.cu", "global_pool_fwd", "PPPiii", dt,
                         (_cdiv(rows * 32, BLOCK), 1, 1), (BLOCK, 1, 1),
                         self._ptr(x), self._ptr(y), self._ptr(am), n, c, width)
        return y, am

    def global_pool_backward(self, x, y, argmax, dy):
        dt = self._dtype(x, y, dy)
        n, c, width = x.shape
        if tuple(y.shape) != (n, 3 * c) or tuple(dy.shape) != (n, 3 * c):
            raise ShapeError(f"global_pool_backward needs y and dy of shape {(n, 3 * c)}; got "
                             f"{tuple(y.shape)} and {tuple(dy.shape)}")
        self._index_array(argmax, (n, c), "global_pool_backward argmax")
        dx = self._empty((n, c, width), dt)
        self._elementwise("global_pool_bwd", "PPPPPiii", dt, dx.size, self._ptr(x), self._ptr(y),
                          self._ptr(argmax), self._ptr(dy), self._ptr(dx), n, c, width,
                          file="pool.cu")
        return dx

    # -- dense -----------------------------------------------------------------------------

    def _dense_shapes(self, x, w):
        if len(x.shape) != 2 or len(w.shape) != 2 or x.shape[1] != w.shape[0]:
            raise ShapeError(f"dense needs x[N, I] and w[I, O]; got {tuple(x.shape)} and "
                             f"{tuple(w.shape)}")
        return x.shape[0], w.shape[0], w.shape[1]

    def _split_plan(self, m: int, n: int, r: int):
        """(tile, splits, chunk) for an m x n output summed over r: split-K when the
        output has too few tiles to fill the GPU and the reduction is long."""
        tile = self._tile(m, n, 1)
        tiles = _cdiv(m, tile["BM"]) * _cdiv(n, tile["BN"])
        splits = 1
        if tiles < 2 * self.sm_count and r >= 256:
            splits = max(1, min(_cdiv(4 * self.sm_count, tiles), r // 128,
                                (1 << 26) // max(1, m * n)))
        chunk = _cdiv(_cdiv(max(r, 1), splits), tile["BK"]) * tile["BK"]
        return tile, max(1, _cdiv(r, chunk)), chunk

    def _dense_gemm(self, name, dt, m, n, r, inputs, bias, out, dims):
        """Launch dense kernel ``name`` into ``out`` [m, n], split-K where it pays."""
        tile, splits, chunk = self._split_plan(m, n, r)
        dest = out if splits == 1 else self._empty((splits, m * n), dt)
        head = [self._ptr(a) for a in inputs]
        if name == "dense_fwd":
            head.append(self._ptr(bias) if splits == 1 else 0)
        self._gemm(name, dt, m, n, splits, tile, (*head, self._ptr(dest), *dims, chunk),
                   "P" * (len(head) + 1) + "iiii", KW=1)
        if splits > 1:
            self._elementwise("sum_splits", "PPiqPi", dt, m * n, self._ptr(dest), self._ptr(out),
                              splits, m * n, 0 if bias is None else self._ptr(bias), n,
                              file="reduce.cu")

    def dense(self, x, w, b):
        dt = self._dtype(x, w, b)
        n, i, o = self._dense_shapes(x, w)
        if tuple(b.shape) != (o,):
            raise ShapeError(f"dense bias has shape {tuple(b.shape)}, expected ({o},)")
        y = self._empty((n, o), dt)
        if y.size:
            self._dense_gemm("dense_fwd", dt, n, o, i, (x, w), b, y, (n, i, o))
        return y

    def dense_backward(self, x, w, dy):
        dt = self._dtype(x, w, dy)
        n, i, o = self._dense_shapes(x, w)
        if tuple(dy.shape) != (n, o):
            raise ShapeError(f"dense_backward dy has shape {tuple(dy.shape)}, expected {(n, o)}")
        dx, dw, db = self._empty((n, i), dt), self._empty((i, o), dt), self._empty((o,), dt)
        if dx.size:
            self._dense_gemm("dense_dx", dt, n, i, o, (dy, w), None, dx, (n, i, o))
        if dw.size:
            self._dense_gemm("dense_dw", dt, i, o, n, (x, dy), None, dw, (n, i, o))
        if o:
            self._launch("reduce.cu", "sum_nq", "PPiii", dt, (o, 1, 1), (BLOCK, 1, 1),
                         self._ptr(dy), self._ptr(db), n, o, 1)
        return dx, dw, db

    # -- activations -----------------------------------------------------------------------

    @staticmethod
    def _act_code(kind) -> int:
        if kind not in _ACT_CODE:
            raise ValueError(f"unknown activation {kind!r}")
        return _ACT_CODE[kind]

    def activation(self, kind, x, slope=0.01):
        dt = self._dtype(x)
        y = self._empty(x.shape, dt)
        self._elementwise("act_fwd", "PPqT", dt, y.size, self._ptr(x), self._ptr(y), y.size,
                          float(slope), ACT=self._act_code(kind))
        return y

    def activation_backward(self, kind, x, y, dy, slope=0.01):
        dt = self._dtype(x, y, dy)
        dx = self._empty(x.shape, dt)
        self._elementwise("act_bwd", "PPPPqT", dt, dx.size, self._ptr(x), self._ptr(y),
                          self._ptr(dy), self._ptr(dx), dx.size, float(slope),
                          ACT=self._act_code(kind))
        return dx

    # -- output ----------------------------------------------------------------------------

    def _softmax_into(self, logits, labels):
        dt = self._dtype(logits)
        if len(logits.shape) != 2:
            raise ShapeError(f"softmax needs logits[N, K]; got {tuple(logits.shape)}")
        n, k = logits.shape
        probs = self._empty((n, k), dt)
        rowloss = self._empty((n,), dt) if labels is not None else None
        if probs.size:
            self._launch("softmax.cu", "softmax_fwd", "PPPPii", dt,
                         (_cdiv(n * 32, BLOCK), 1, 1), (BLOCK, 1, 1),
                         self._ptr(logits), 0 if labels is None else self._ptr(labels),
                         self._ptr(probs), 0 if rowloss is None else self._ptr(rowloss), n, k)
        return probs, rowloss

    def softmax(self, logits):
        return self._softmax_into(logits, None)[0]

    def softmax_cross_entropy(self, logits, labels):
        self._index_array(labels, (logits.shape[0],), "softmax_cross_entropy labels")
        probs, rowloss = self._softmax_into(logits, labels)
        n = probs.shape[0]
        if n == 0 or probs.shape[1] == 0:
            return float("nan"), probs
        total = self._empty((1,), probs.dtype)
        self._launch("reduce.cu", "sum_all", "PPq", str(probs.dtype), (1, 1, 1), (BLOCK, 1, 1),
                     self._ptr(rowloss), self._ptr(total), n)
        return float(self.to_host(total)[0]) / n, probs

    def softmax_cross_entropy_backward(self, probs, labels):
        dt = self._dtype(probs)
        n, k = probs.shape
        self._index_array(labels, (n,), "softmax_cross_entropy_backward labels")
        g = self._empty((n, k), dt)
        self._elementwise("softmax_xent_bwd", "PPPii", dt, g.size, self._ptr(probs),
                          self._ptr(labels), self._ptr(g), n, k, file="softmax.cu")
        return g

    # -- updates ---------------------------------------------------------------------------

    def _same_shapes(self, op, *arrays) -> str:
        dt = self._dtype(*arrays)
        if any(tuple(a.shape) != tuple(arrays[0].shape) for a in arrays):
            raise ShapeError(f"{op} needs arrays of one shape; got "
                             f"{', '.join(str(tuple(a.shape)) for a in arrays)}")
        return dt

    def sgd_update(self, param, grad, velocity, lr, momentum, weight_decay):
        dt = self._same_shapes("sgd_update", param, grad, velocity)
        self._elementwise("sgd_update", "PPPqTTT", dt, param.size, self._ptr(param),
                          self._ptr(grad), self._ptr(velocity), param.size, float(lr),
                          float(momentum), float(lr) * float(weight_decay))

    def adam_update(self, param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay,
                    decoupled_weight_decay=0.0):
        dt = self._same_shapes("adam_update", param, grad, m, v)
        b1, b2 = float(beta1), float(beta2)
        self._elementwise("adam_update", "PPPPqTTTTTTTTTT", dt, param.size, self._ptr(param),
                          self._ptr(grad), self._ptr(m), self._ptr(v), param.size, float(lr),
                          b1, 1.0 - b1, b2, 1.0 - b2, float(eps), float(weight_decay),
                          1.0 - b1 ** step, 1.0 - b2 ** step, float(decoupled_weight_decay))
