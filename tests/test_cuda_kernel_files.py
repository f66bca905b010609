"""The kernel files both CUDA backends run (:mod:`genrecnn.backends.cuda_kernels`), checked
where there is no GPU: each compiles (with nvcc, when it is on PATH) as the one loader
assembles it, with the options PyCUDA's and CuPy's builds use, for float and double, and
the launch geometry keeps the contract's rules (the dropout mask, every example in one
channel block)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from genrecnn.backends.cuda_kernels import grids as G
from genrecnn.backends.cuda_kernels import lowp
from genrecnn.backends.cuda_kernels.loader import kernel_files, kernel_source
from genrecnn.backends.cupy_backend import CupyBackend
from genrecnn.backends.pycuda_backend.backend import PycudaBackend
from genrecnn.engine.ops import OP_NAMES
from genrecnn.engine.ops.maps import GOLDEN, lowbias32

NVCC = shutil.which("nvcc")
# Compile-time constants a file needs (conv2d_c1.cu: KH, KW; gemm.cu: a tiling and KW).
CONSTS = {"conv2d_c1.cu": {"KH": 3, "KW": 3}, "conv1d_direct.cu": {"KW": 4, "DW_C": 32},
          "gemm.cu": {"BM": 64, "BN": 64, "BK": 16, "TM": 4, "TN": 4, "KW": 3},
          "elementwise.cu": {"ACT": 1}, "mma.cu": {"BM": 64, "BN": 128, "WM": 2, "WN": 4, "PREC": 1}}
# The options each backend's build passes (PyCUDA: SourceModule's defaults; CuPy: the
# RawModule options of loader.cupy_module).
NVCC_FLAGS = {"pycuda": [], "cupy": ["--std=c++14"]}


def test_every_kernel_file_lives_in_the_one_package():
    files = kernel_files()
    assert "updates.cu" in files and "pool.cu" in files and len(files) == len(set(files))
    for backend in ("pycuda_backend", "cupy_backend"):
        folder = Path(__file__).resolve().parents[1] / "backends" / backend
        assert not list(folder.glob("*.cu")), f"{backend} keeps its own .cu files"


@pytest.mark.skipif(NVCC is None, reason="nvcc not on PATH")
@pytest.mark.parametrize("loader", ["pycuda", "cupy"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("file", kernel_files())
def test_kernel_file_compiles(tmp_path, file, dtype, loader):
    _compiles(tmp_path, file, dtype, loader, CONSTS.get(file, {}))


@pytest.mark.skipif(NVCC is None, reason="nvcc not on PATH")
@pytest.mark.parametrize("loader", ["pycuda", "cupy"])
@pytest.mark.parametrize("tile", lowp.TILES, ids=lambda t: f"BM{t['BM']}")
@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
def test_mma_compiles_at_each_precision_and_tile(tmp_path, precision, tile, loader):
    _compiles(tmp_path, "mma.cu", "float32", loader, {**tile, "PREC": lowp.PREC[precision]})


def _compiles(tmp_path, file, dtype, loader, consts):
    text = kernel_source(file, dtype, consts)
    if loader == "cupy":      # NVRTC has no system include path: no file may include one
        assert "#include" not in text
    path = tmp_path / f"{loader}_{dtype}_{file}"
    path.write_text(text)
    done = subprocess.run([NVCC, "--ptx", "-arch=compute_90", *NVCC_FLAGS[loader], "-o",
                           "/dev/null", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.25, 1 / 3, 0.5, 0.9, 1 - 2.0 ** -24,
                                  np.nextafter(0.5, 1.0), np.nextafter(0.5, 0.0)])
def test_dropout_threshold_is_the_contract_rule(rate):
    keep_from, scale = G.dropout_threshold(rate)
    k = lowbias32((12345 * GOLDEN + 678) % 2 ** 32)
    i = np.arange(1 << 16, dtype=np.uint64)
    top = lowbias32((i * GOLDEN + k) % 2 ** 32) >> 8
    assert np.array_equal(top >= keep_from, top / 2 ** 24 >= rate)
    boundary = np.arange(max(0, keep_from - 2), min(1 << 24, keep_from + 2), dtype=np.uint64)
    assert np.array_equal(boundary >= keep_from, boundary / 2 ** 24 >= rate)
    assert scale == pytest.approx(1 / (1 - rate))


@pytest.mark.parametrize("n,c,s,sms", [(32, 32, 32768, 132), (32, 256, 512, 132), (32, 256, 1, 132),
                                       (1, 1, 1, 132), (7, 3, 5, 1), (0, 4, 9, 132),
                                       (1000, 2, 3, 16)])
def test_channel_split_gives_every_example_one_block(n, c, s, sms):
    g, rows, lts = G.channel_split(n, c, s, sms)
    assert 1 <= g <= 65535 and rows >= 1 and (g - 1) * rows < max(n, 1) <= g * rows
    assert 0 <= lts <= 8 and (1 << lts) <= G.THREADS


@pytest.mark.parametrize("n,f,p,kk,sms", [(32, 16, 32768, 9, 132), (1, 1, 1, 1, 132),
                                          (0, 4, 9, 9, 132), (3, 33, 5000, 49, 8),
                                          (64, 7, 4096, 25, 132)])
def test_c1_dw_plan_covers_every_position_once(n, f, p, kk, sms):
    fblocks, g, chunk = G.c1_dw_plan(n, f, p, kk, sms)
    per = G.c1_dw_filters(kk)
    assert (fblocks - 1) * per < f <= fblocks * per
    assert 1 <= g <= 65535 and chunk >= 1 and (g - 1) * chunk < max(n * p, 1) <= g * chunk
    assert g == 1 or chunk >= G.CHANNEL_MIN_VALUES


def test_conv2d_shape_and_direct_path():
    g = G.conv2d_shape((32, 1, 128, 256), (32, 1, 3, 3), (1, 1), (1, 1))
    assert (g.ho, g.wo, g.p, g.r, g.direct) == (128, 256, 128 * 256, 9, True)
    g = G.conv2d_shape((32, 32, 64, 128), (64, 32, 3, 3), (2, 1), (0, 1))
    assert (g.ho, g.wo, g.r, g.direct) == (31, 128, 288, False)


@pytest.mark.parametrize("cls", [CupyBackend, PycudaBackend])
def test_cuda_backends_declare_every_op_group(cls):
    assert cls.declared_ops() == OP_NAMES


@pytest.mark.parametrize("rows,cols", [(32768, 1292), (4096, 1292), (128, 1292), (1, 10 ** 7),
                                       (1, 1), (10 ** 6, 300)])
def test_copy_rows_grid_splits_rows_only_while_blocks_are_few(rows, cols):
    (gx, gy, gz), block = G.copy_rows_grid(rows, cols)
    (_, full_y, _), full_block = G.rows_grid(rows, cols)
    assert (gx, gz, block) == (rows, 1, full_block)
    assert 1 <= gy <= full_y and (gy == 1 or rows * (gy - 1) < G.COPY_BLOCKS)
