"""The conformance cases the emulated backends run: every op group they claim, whole, except
conv1d. Each conv1d kernel width is another pair of builds of conv1d_direct.cu and gemm.cu
(40 modules for the whole group), so only the cases of widths 3 and 4 run: they take both
direct-kernel tilings (C <= 32 and C > 32), the GEMM path (F > 64), the long-W split and
the gradcheck."""
from __future__ import annotations

from genrecnn.conformance.cases import cases_for
from genrecnn.conformance.runner import run_case, run_conformance
from genrecnn.engine.ops import DTYPES, PRECISIONS

from . import build
from .device import modules_needed

WHOLE_GROUPS = ("maxpool2d", "batchnorm", "fused", "activation", "softmax", "dropout",
                "conv2d", "dense", "global_pool", "train_loss", "maxpool1d", "sgd_update",
                "adam_update", "update_many", "batch", "transfer", "collective")
CONV1D_WIDTHS = ("K3", "K4")


def conv1d_subset(precisions=PRECISIONS):
    """The conv1d cases of widths 3 and 4, at every dtype and at these precisions."""
    return [c for dt in DTYPES for p in precisions for c in cases_for("conv1d", dt, p)
            if c.label.split("-")[0].endswith(CONV1D_WIDTHS)]


def run_subset(be, conv1d_precisions=PRECISIONS) -> None:
    for group in WHOLE_GROUPS:
        run_conformance(be, ops=[group])
    for case in conv1d_subset(conv1d_precisions):
        run_case(be, case)


def prebuilt(backend_class: type, conv1d_precisions=PRECISIONS):
    """A backend of ``backend_class`` (an emulated one), every library the subset (conv1d
    at ``conv1d_precisions``) launches from built first, in parallel."""
    build.prebuild(modules_needed(lambda be: run_subset(be, conv1d_precisions), backend_class))
    return backend_class()
