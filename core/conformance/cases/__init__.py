"""Every conformance case: (op group, dtype, check, shape label) -> a function of a backend.

A case returns its largest relative error (see :mod:`genrecnn.conformance.checks`)
or raises :class:`CheckFailed`. Inputs are drawn from a generator seeded by the
case's id, so a failure reproduces exactly. The grid covers the edge cases named
in the contract: batch 1, width equal to the kernel, pools that do not divide the
width, overlapping and gapped pools, ties, NaN in maxima, all-zero rows, huge
logits and large activations, non-contiguous arrays handed to ``adopt``; and
shapes that cross GPU thread blocks and take GEMM backends' other paths (tilings,
split reductions). Finite-difference cases (``gradcheck``) exist for float64 only;
float32 backward ops are checked against the reference's analytic gradient,
which is itself proven by finite differences in genrecnn's tests. The products
(conv1d, conv2d, dense) have their forward and backward cases again in float32 at
each precision other than fp32, against the reference on rounded operands.
"""
from __future__ import annotations

from genrecnn.conformance.cases import (activation, batch, batchnorm, collective, conv1d, conv2d, dense,
                                        dropout, fused, global_pool, graph, maxpool1d, maxpool2d,
                                        softmax, staging, train_loss, transfer, update_many,
                                        updates)
from genrecnn.conformance.cases.common import INDEX, Case
from genrecnn.engine.ops import DEFAULT_PRECISION, OP_GROUPS, PRECISION_GROUPS

BUILDERS = {"transfer": transfer.transfer_cases, "conv1d": conv1d.conv1d_cases,
            "maxpool1d": maxpool1d.maxpool1d_cases, "global_pool": global_pool.global_pool_cases,
            "dense": dense.dense_cases, "activation": activation.activation_cases,
            "softmax": softmax.softmax_cases, "sgd_update": updates.sgd_cases,
            "adam_update": updates.adam_cases, "conv2d": conv2d.conv2d_cases,
            "maxpool2d": maxpool2d.maxpool2d_cases, "batchnorm": batchnorm.batchnorm_cases,
            "dropout": dropout.dropout_cases, "batch": batch.batch_cases,
            "train_loss": train_loss.train_loss_cases,
            "update_many": update_many.update_many_cases, "graph": graph.graph_cases,
            "staging": staging.staging_cases, "collective": collective.collective_cases,
            "fused": fused.fused_cases}
assert set(BUILDERS) == {g.name for g in OP_GROUPS}, "every op group needs conformance cases"

__all__ = ["BUILDERS", "INDEX", "Case", "cases_for"]


def cases_for(group: str, dtype: str, precision: str = DEFAULT_PRECISION) -> list[Case]:
    """The cases of one op group at one dtype (int32 exists for ``transfer`` only) and
    ``precision`` (tf32 and bf16 exist for the products in float32 only)."""
    if dtype == INDEX and group != "transfer":
        return []
    if precision == DEFAULT_PRECISION:
        return BUILDERS[group](dtype)
    if group not in PRECISION_GROUPS or dtype != "float32":
        return []
    return BUILDERS[group](dtype, precision)
