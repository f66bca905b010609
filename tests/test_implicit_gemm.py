"""mma.cu's exact float32 core (PREC 0): the implicit-GEMM convolutions and dense products of
``cuda_kernels/lowp.py`` at fp32, run on the CPU emulator through the PyCUDA backend's own
launch code, pass the conformance cases of conv1d, conv2d and dense in float32. The backends
keep their own fp32 paths; ``bench/gpu_kernels.py --implicit`` times the two on a GPU."""
from __future__ import annotations

import pytest

from cuda_emulator import compiler
from cuda_emulator.backend import EmulatedPycudaBackend
from genrecnn.conformance.cases import cases_for
from genrecnn.conformance.runner import PASS, run_case, run_conformance
from genrecnn.engine.ops.precision import PRECISION_METHODS

pytestmark = pytest.mark.skipif(compiler() is None,
                                reason="no g++: the CUDA emulator compiles the kernels with it")


def _through_lowp(method: str):
    def op(self, *args, precision="fp32"):
        return getattr(self, f"_lp_{method}")(*args, precision)
    return op


# every product of the emulated PyCUDA backend through lowp's plans, fp32 included
ImplicitProducts = type("ImplicitProducts", (EmulatedPycudaBackend,),
                        {"name": "pycuda-emulated-implicit",
                         **{m: _through_lowp(m) for m in PRECISION_METHODS}})


@pytest.mark.parametrize("group", ["conv2d", "dense"])
def test_the_implicit_fp32_products_pass_their_conformance_cases(group):
    report = run_conformance(ImplicitProducts(), ops=[group], dtypes=["float32"],
                             precisions=["fp32"])
    assert report.rows and {r.status for r in report.rows} == {PASS}, report.text()


def test_the_implicit_fp32_conv1d_passes_its_cases_of_two_widths():
    cases = [c for c in cases_for("conv1d", "float32")
             if c.label.split("-")[0].endswith(("K3", "K4"))]
    be = ImplicitProducts()
    failed = [r.detail for r in (run_case(be, c) for c in cases) if r.status != PASS]
    assert cases and not failed, "\n".join(failed)
