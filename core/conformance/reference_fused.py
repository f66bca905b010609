"""The float64 reference of the fused block op, composed from the references of the ops it
fuses (:mod:`.reference_maps`' batch norm and max pooling, :mod:`.reference`'s ReLU), so
it adds no arithmetic of its own that a backend could share a bug with."""
from __future__ import annotations

from genrecnn.conformance import reference as ref
from genrecnn.conformance import reference_maps as ref_maps


def norm_relu_maxpool2d_train(z, gamma, beta, eps, size, stride):
    """-> (p, argmax, mean, invstd, y): y is the normalised map argmax points into."""
    y, mean, invstd = ref_maps.batchnorm_train(z, gamma, beta, eps)
    q, argmax = ref_maps.maxpool2d(y, size, stride)
    return ref.activation("relu", q), argmax, mean, invstd, y


def norm_relu_maxpool2d_infer(z, gamma, beta, running_mean, running_var, eps, size, stride):
    y = ref_maps.batchnorm_infer(z, gamma, beta, running_mean, running_var, eps)
    return ref.activation("relu", ref_maps.maxpool2d(y, size, stride)[0])


def norm_relu_maxpool2d_backward(z, gamma, mean, invstd, argmax, p, dp):
    """-> (dz, dgamma, dbeta): ReLU's backward at the pooled values (p > 0 exactly where
    the pooled normalised value is), pooling's, then batch norm's."""
    g = ref.activation_backward("relu", p, p, dp)
    dy = ref_maps.maxpool2d_backward(g, argmax, z.shape[2], z.shape[3])
    return ref_maps.batchnorm_backward(z, gamma, mean, invstd, dy)
